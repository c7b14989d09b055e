package identityweb

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// A handler that panics does not use its Idempotency-Key up: recovery still answers 500,
// and the retry is processed instead of being told for a day that it is in progress.
func TestIdempotentPanicReleasesClaim(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		master := make([]byte, 32)
		_, _ = rand.Read(master)
		keys, err := keyring.Open(context.Background(), db, master, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		api := NewAPI(slog.New(slog.NewTextHandler(io.Discard, nil)))
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		r.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, _ any) {
			WriteProblem(c, http.StatusInternalServerError, identity.EInternal, "Internal Server Error", "panic", nil)
		}))
		calls := 0
		r.POST("/v1/admin/things/:id", func(c *gin.Context) {
			c.Set(contextAPIKey, &identity.APIKey{TenantID: "t1"})
		}, Idempotent(identity.New(db, keys, time.Now), api, PublicBodyLimit), func(c *gin.Context) {
			if calls++; calls == 1 {
				panic("handler bug")
			}
			c.JSON(http.StatusCreated, gin.H{"call": calls})
		})
		post := func() *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/v1/admin/things/a", strings.NewReader(`{"x":1}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(HeaderIdempotencyKey, "k1")
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			return w
		}
		if w := post(); w.Code != http.StatusInternalServerError {
			t.Fatalf("panicking handler: %d %s", w.Code, w.Body)
		}
		if w := post(); w.Code != http.StatusCreated || w.Body.String() != `{"call":2}` {
			t.Fatalf("retry after a panic: %d %s %v", w.Code, w.Body, w.Header())
		}
		if w := post(); w.Code != http.StatusCreated || w.Body.String() != `{"call":2}` || w.Header().Get("Idempotent-Replayed") != "true" {
			t.Fatalf("second retry: %d %s", w.Code, w.Body)
		}
	})
}
