package v1alpha1

import "fmt"

// HumanBytes renders a size in binary units, the form RepositoryStatus.TotalSize holds
// ("512 B", "15.9 KiB", "1.2 GiB"). It lives with the API because that status field is
// written in this form; the plugin and the runner print every size with it too, so that a
// size reads the same in a status, a table and a log line.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
