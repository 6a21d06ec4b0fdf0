package repo_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/runnertest"
)

// TestFirstBackupsRace: runs racing to create one repository with different passwords, on the
// file store, fake-gcs-server and MinIO: exactly one creates it, every other fails naming the
// race (or, when it came late enough to see the key, the wrong password), and the winner's
// password opens the repository afterwards, with one key in it. Runs with the winner's password
// open the repository the winner made.
func TestFirstBackupsRace(t *testing.T) {
	gcs := gcstest.Start(t, "race")
	minio := miniotest.Start(t, "race")
	backends := []struct {
		name string
		url  func(prefix string) string
		env  map[string]string
	}{
		{"file", func(string) string { return "file://" + t.TempDir() }, nil},
		{"gcs", gcs.URL, gcs.Env()},
		{"minio", minio.URL, minio.Env()},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for round := range 3 {
				url := be.url(fmt.Sprintf("round%d", round))
				const n = 4
				var wg sync.WaitGroup
				errs := make([]error, n)
				start := make(chan struct{})
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						b, err := store.Open(context.Background(), url, be.env)
						if err != nil {
							errs[i] = err
							return
						}
						defer b.Close()
						<-start
						r, err := repo.Open(context.Background(), b, repo.Options{Password: fmt.Sprintf("password %d", i), Create: true, WorkFactor: 10})
						if err == nil {
							errs[i] = r.Ready(context.Background())
						} else {
							errs[i] = err
						}
					}()
				}
				close(start)
				wg.Wait()
				winner := -1
				for i, err := range errs {
					switch {
					case err == nil && winner >= 0:
						t.Fatalf("round %d: password %d and password %d both opened the new repository", round, winner, i)
					case err == nil:
						winner = i
					case !errors.Is(err, repo.ErrCreateRace) && !strings.Contains(err.Error(), "wrong repository password"):
						t.Fatalf("round %d: password %d: %v, want the race or the wrong password named", round, i, err)
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: nobody created the repository: %v", round, errs)
				}
				r := runnertest.OpenRepoWithPassword(t, url, fmt.Sprintf("password %d", winner), be.env)
				keys, err := r.ListObjects(context.Background(), "keys/", false)
				if err != nil || len(keys) != 1 {
					t.Fatalf("round %d: keys after the race: %v %v, want one", round, keys, err)
				}
			}
		})
	}
}

// TestCreateRaceLoserFails: a run that found the repository empty but whose conditional write
// of the first key lost refuses with the race named when its password differs, and opens the
// winner's key when it is the same.
func TestCreateRaceLoserFails(t *testing.T) {
	dir := t.TempDir()
	b, err := store.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := repo.CreateKeyForTest(context.Background(), b, repo.Options{Password: "first", WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	err = repo.CreateKeyForTest(context.Background(), b, repo.Options{Password: "second", WorkFactor: 10})
	if !errors.Is(err, repo.ErrCreateRace) || !strings.Contains(err.Error(), "same password") {
		t.Fatalf("loser with another password: %v, want ErrCreateRace", err)
	}
	if err := repo.CreateKeyForTest(context.Background(), b, repo.Options{Password: "first", WorkFactor: 10}); err != nil {
		t.Fatalf("loser with the same password: %v, want the winner's key", err)
	}
}

// TestRedactedPasswordRefused: the placeholder kubectl stash prints for a secret value is not a
// password: nothing is created with it.
func TestRedactedPasswordRefused(t *testing.T) {
	dir := t.TempDir()
	b, err := store.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = repo.Open(context.Background(), b, repo.Options{Password: "<redacted>", Create: true, WorkFactor: 10})
	if err == nil || !strings.Contains(err.Error(), "placeholder") {
		t.Fatalf("Open with the password <redacted>: %v, want a refusal", err)
	}
	if keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*")); len(keys) != 0 {
		t.Fatalf("a key was created: %v", keys)
	}
}
