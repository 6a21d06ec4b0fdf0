package cluster

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3 % Slots}, // the CRC16 check value from the cluster spec
		{"foo", 12182},
		{"{user1000}.following", Slot([]byte("user1000"))},
		{"foo{}{bar}", Slot([]byte("foo{}{bar}"))},
		{"foo{{bar}}zap", Slot([]byte("{bar"))},
	}
	for _, tt := range tests {
		if got := Slot([]byte(tt.key)); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestParseNodes(t *testing.T) {
	txt := `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922 [10923->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [10923-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
`
	top, err := ParseNodes(txt)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range top.Masters() {
		got = append(got, m.Addr)
	}
	if diff := cmp.Diff([]string{"127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003"}, got); diff != "" {
		t.Errorf("masters (-want +got):\n%s", diff)
	}
	r, ok := top.Replica("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
	if !ok || r.Addr != "127.0.0.1:30004" {
		t.Errorf("replica = %+v, %v", r, ok)
	}
	if diff := cmp.Diff([]int{10923}, top.Migrations()); diff != "" {
		t.Errorf("migrations (-want +got):\n%s", diff)
	}
	own, err := top.Owners()
	if err != nil {
		t.Fatal(err)
	}
	if own[0] != 0 || own[5461] != 1 || own[16383] != 2 {
		t.Errorf("owners: %d %d %d", own[0], own[5461], own[16383])
	}
	if _, err := ParseNodes("x 1.2.3.4:1@2 master - 0 0 1 connected 0-99999\n"); err == nil {
		t.Error("bad range accepted")
	}
}
