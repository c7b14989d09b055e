package identity_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/clocktest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// `lupa keys rotate` runs while servers run: a server that has not yet reloaded its keys
// must still find every person, including those added after the rotation by instances that
// know the new key. Otherwise it creates the person a second time, and their consents split
// between two subjects. A new lookup key therefore only hashes new rows once every instance
// has loaded it, and identifiers are moved to it only then.
func TestLookupKeyRotationWhileInstancesRun(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clk := clocktest.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		master := make([]byte, 32)
		_, _ = rand.Read(master)
		open := func() (*identity.Service, *keyring.Keyring) {
			keys, err := keyring.Open(ctx, db, master, clk.Now)
			if err != nil {
				t.Fatal(err)
			}
			return identity.New(db, keys, clk.Now), keys
		}
		server, serverKeys := open() // a running instance
		tenant, _, err := server.CreateTenant(ctx, identity.TenantInput{Name: "Kierto Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		person := func(ids *identity.Service, number string) *identity.Subject {
			t.Helper()
			var subj *identity.Subject
			if err := db.Write.Transaction(func(tx *gorm.DB) error {
				subj, _, err = ids.EnsurePerson(ctx, tx, tenant.ID, identity.Identifier{Kind: identity.IDCustomerNumber, Value: number})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return subj
		}
		mustFind := func(when string, ids *identity.Service, want *identity.Subject, number string) {
			t.Helper()
			got, err := ids.FindSubject(ctx, tenant.ID, identity.Identifier{Kind: identity.IDCustomerNumber, Value: number})
			if err != nil || got.ID != want.ID {
				t.Fatalf("%s: %s found as %+v (%v), want subject %s", when, number, got, err, want.ID)
			}
		}
		c1 := person(server, "C-1")
		clk.Add(time.Hour)

		// lupa keys rotate, from another process.
		cli, cliKeys := open()
		created, err := cliKeys.Rotate(ctx, keyring.Lookup)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := cli.RehashIdentifiers(ctx); err != nil || n != 0 {
			t.Fatalf("re-hashing before every instance has the new key changed %d rows (%v)", n, err)
		}
		mustFind("right after the rotation", server, c1, "C-1")
		// An instance that has loaded the new key adds a person: the server still finds them.
		c2 := person(cli, "C-2")
		mustFind("a person added by an instance with the new key", server, c2, "C-2")

		clk.Add(keyring.ReloadInterval) // the server's minute: it loads the new key
		if err := serverKeys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Add(keyring.LookupKeyDelay - keyring.ReloadInterval + time.Second)
		if err := cliKeys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got := cliKeys.ActiveID(keyring.Lookup); got != created[0] {
			t.Fatalf("after the delay new rows are hashed with %s, want the new key %s", got, created[0])
		}
		c3 := person(cli, "C-3")
		if n, err := cli.RehashIdentifiers(ctx); err != nil || n != 2 {
			t.Fatalf("re-hash after the delay: %d rows (%v), want C-1 and C-2", n, err)
		}
		for number, want := range map[string]*identity.Subject{"C-1": c1, "C-2": c2, "C-3": c3} {
			mustFind("after the re-hash", server, want, number)
			mustFind("after the re-hash", cli, want, number)
		}
		var stale int64
		if err := db.Read.Raw("SELECT COUNT(*) FROM identifiers WHERE hash_kid <> ?", created[0]).Scan(&stale).Error; err != nil || stale != 0 {
			t.Fatalf("%d identifiers left under the old key (%v)", stale, err)
		}
	})
}
