package v1alpha1

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://minio:9000", "https://minio:9000"},
		{"https://key:secret@minio:9000", "https://redacted@minio:9000"},
		{"redis://u:p@w@h:1/0", "redis://redacted@h:1/0"},
		{"s3://bucket/p?endpoint=http%3A%2F%2Fkey%3Asecret%40minio%3A9000&region=us-east-1",
			"s3://bucket/p?endpoint=http%3A%2F%2Fredacted%40minio%3A9000&region=us-east-1"},
		{"s3://bucket/p?endpoint=http://key:secret@minio:9000", "s3://bucket/p?endpoint=http%3A%2F%2Fredacted%40minio%3A9000"},
		{"redis://user:pa%zzss@host:1", "redis://redacted@host:1"},
		{"not a url but://x:y@z", "not a url but://redacted@z"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
