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
		r, _, keyed := idempotentRouter(t, db)
		calls := 0
		r.POST("/v1/admin/things/:id", append(keyed, func(c *gin.Context) {
			if calls++; calls == 1 {
				panic("handler bug")
			}
			c.JSON(http.StatusCreated, gin.H{"call": calls})
		})...)
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

// A request with an Idempotency-Key is cut off at its run limit: the server's WriteTimeout
// would not stop it, and a slow request that outlived its claim would have a retry take
// the key over and do the same work twice. The cut-off request releases its key.
func TestIdempotentHandlerDeadline(t *testing.T) {
	defer func(d time.Duration) { idempotentRunLimit = d }(idempotentRunLimit)
	idempotentRunLimit = 100 * time.Millisecond
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		r, api, keyed := idempotentRouter(t, db)
		calls := 0
		r.POST("/v1/admin/things/:id/reconcile", append(keyed, func(c *gin.Context) {
			if calls++; calls > 1 {
				c.JSON(http.StatusOK, gin.H{"call": calls})
				return
			}
			select { // slow work that stops when its context does
			case <-c.Request.Context().Done():
				api.Fail(c, c.Request.Context().Err())
			case <-time.After(5 * time.Second):
				c.JSON(http.StatusOK, gin.H{"call": calls, "cut_off": false})
			}
		})...)
		post := func() *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/v1/admin/things/a/reconcile", nil)
			req.Header.Set(HeaderIdempotencyKey, "k1")
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			return w
		}
		start := time.Now()
		w := post()
		if took := time.Since(start); w.Code != http.StatusServiceUnavailable || took > 3*time.Second {
			t.Fatalf("slow request: %d %s after %v, want 503 at the run limit", w.Code, w.Body, took)
		}
		if w := post(); w.Code != http.StatusOK || w.Body.String() != `{"call":2}` {
			t.Fatalf("retry after the cut-off: %d %s", w.Code, w.Body)
		}
	})
}

// idempotentRouter is a router whose recovery answers a panic with 500, its API, and the
// handlers a keyed admin route runs before its own: a tenant's API key, then Idempotent.
func idempotentRouter(t *testing.T, db *sqldb.DB) (*gin.Engine, *API, []gin.HandlerFunc) {
	t.Helper()
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
	auth := func(c *gin.Context) { c.Set(contextAPIKey, &identity.APIKey{TenantID: "t1"}) }
	return r, api, []gin.HandlerFunc{auth, Idempotent(identity.New(db, keys, time.Now), api, PublicBodyLimit)}
}
