package main

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// Moving a large table of identifiers to new keys takes long. Meanwhile the instance must
// go on reloading its keys: the delays of new lookup and signing keys count on every
// instance loading a rotation within keyring.ReloadInterval, or it would miss people
// hashed with a newer lookup key and publish a key set without the key others sign with.
func TestKeysReloadWhileIdentifiersMove(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			master := newMasterKey()
			a := openApp(t, sqldbtest.URL(t, dialect), master)
			ctx, cancel := context.WithCancel(context.Background())

			// The move blocks, as a long re-hash would, until the test lets it go.
			started, release := make(chan struct{}), make(chan struct{})
			a.reloadEvery = 10 * time.Millisecond
			a.moveStarted = func() { close(started); <-release }
			done := make(chan struct{})
			go func() { a.reloadKeys(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			<-started

			// `lupa keys rotate` from another process while the move runs.
			m, _ := base64.StdEncoding.DecodeString(master)
			other, err := keyring.Open(ctx, a.db, m, a.now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for a.keys.Count(keyring.Signing) != 2 || a.keys.Count(keyring.Lookup) != 2 {
				if time.Now().After(deadline) {
					close(release)
					t.Fatal("the instance did not load the rotated keys while its identifiers moved")
				}
				time.Sleep(10 * time.Millisecond)
			}
			close(release)
		})
	}
}
