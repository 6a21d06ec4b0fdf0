package v1alpha1

import "testing"

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 16282: "15.9 KiB", 3 << 20: "3.0 MiB",
		1288490189: "1.2 GiB", 1 << 40: "1.0 TiB", 1 << 62: "4.0 EiB",
	} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
