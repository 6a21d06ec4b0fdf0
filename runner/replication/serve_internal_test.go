package replication

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"stash.dev/redis/runner/resp"
)

// TestHandshakeAuth: only a replica that presents the masterauth token (and masteruser, if set)
// gets to PSYNC; nothing else on the network can pull the snapshot from the runner.
func TestHandshakeAuth(t *testing.T) {
	tests := []struct {
		name       string
		user       string
		send       [][]string
		wantErr    string
		wantReply  string
		wantResync bool
	}{
		{"right token", "", [][]string{{"PING"}, {"AUTH", "tok"}, {"REPLCONF", "capa", "eof", "capa", "psync2"}, {"PSYNC", "?", "-1"}}, "", "", true},
		{"right user and token", "u", [][]string{{"AUTH", "u", "tok"}, {"REPLCONF", "capa", "eof"}, {"PSYNC", "?", "-1"}}, "", "", true},
		{"wrong token", "", [][]string{{"AUTH", "guess"}}, "wrong masterauth", "-WRONGPASS", false},
		{"wrong user", "u", [][]string{{"AUTH", "x", "tok"}}, "wrong masterauth", "-WRONGPASS", false},
		{"no auth", "", [][]string{{"REPLCONF", "capa", "eof"}, {"PSYNC", "?", "-1"}}, "did not authenticate", "-NOAUTH", false},
		{"no eof capability", "", [][]string{{"AUTH", "tok"}, {"PSYNC", "?", "-1"}}, "diskless", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runner, replica := net.Pipe()
			defer replica.Close()
			done := make(chan error, 1)
			go func() {
				defer runner.Close()
				done <- handshake(resp.NewReader(bufio.NewReader(runner)), runner, tt.user, "tok")
			}()
			go func() {
				for _, c := range tt.send {
					if _, err := replica.Write(resp.AppendCommand(nil, c...)); err != nil {
						return
					}
				}
			}()
			var replies strings.Builder
			br := bufio.NewReader(replica)
			for {
				l, err := br.ReadString('\n')
				replies.WriteString(l)
				if err != nil {
					break
				}
			}
			err := <-done
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("handshake: %v, want an error with %q", err, tt.wantErr)
			}
			if got := strings.Contains(replies.String(), "+FULLRESYNC "); got != tt.wantResync {
				t.Errorf("replies %q: FULLRESYNC %v, want %v", replies.String(), got, tt.wantResync)
			}
			if tt.wantReply != "" && !strings.Contains(replies.String(), tt.wantReply) {
				t.Errorf("replies %q, want %q", replies.String(), tt.wantReply)
			}
		})
	}
}
