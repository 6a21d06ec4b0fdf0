package backup_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/rdb"
)

// badSetListpack is the object of a listpack set whose header says 2 members but whose second
// entry claims 5 bytes where 1 is: its checksum is right, Redis without sanitize-dump-payload
// stores it and then crashes reading it (SMEMBERS, DEBUG DIGEST).
var badSetListpack = []byte{13, 13, 0, 0, 0, 2, 0, 0x81, 'a', 2, 0x85, 'b', 2, 0xFF}

// rdbFile returns an RDB file of format 11 holding, in database 0, the given keys as
// type/key/object triples, with a valid checksum.
func rdbFile(keys ...[]byte) []byte {
	b := []byte("REDIS0011")
	b = append(b, 0xFE, 0, 0xFB, byte(len(keys)/3), 0)
	for i := 0; i < len(keys); i += 3 {
		b = append(b, keys[i][0], byte(len(keys[i+1])))
		b = append(b, keys[i+1]...)
		b = append(b, keys[i+2]...)
	}
	b = append(b, 0xFF)
	return binary.LittleEndian.AppendUint64(b, rdb.Checksum(0, b))
}

// TestImportRefusesDamagedValues imports an RDB file whose checksum is valid but whose value is
// corrupt (which redis-check-rdb rejects, and which crashed targets restored from it), and one
// holding a key twice (which stops a server loading it): both are refused, naming the key, and
// leave no snapshot. Before, both were imported ("2 keys").
func TestImportRefusesDamagedValues(t *testing.T) {
	str := []byte{rdb.TypeString}
	tests := []struct {
		name string
		file []byte
		want error
		key  string
	}{
		{"corrupt listpack", rdbFile(str, []byte("good"), []byte{1, 'x'}, []byte{rdb.TypeSetListpack}, []byte("bad"), badSetListpack), rdb.ErrCorrupt, `"bad"`},
		{"key twice", rdbFile(str, []byte("twice"), []byte{1, 'x'}, str, []byte("twice"), []byte{1, 'y'}), rdb.ErrDuplicateKey, `"twice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRepo(t, "file://"+t.TempDir(), nil)
			_, err := backup.Import(context.Background(), backup.ImportOptions{RDB: bytes.NewReader(tt.file), Source: "x.rdb", Repository: r})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("import: %v, want %v naming %s", err, tt.want, tt.key)
			}
			assertNoSnapshot(t, r)
		})
	}
}
