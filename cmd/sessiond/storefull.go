package main

import (
	"errors"
	"net/http"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/store"
)

// storeFull reports whether err is the store refusing a write for lack of
// room (store.ErrFull: Redis at maxmemory with the noeviction policy).
// Sign-ins then fail while reads and sign-outs (deletes) still work, and the
// operator, not a retry, fixes it: the answer says so instead of the
// generic "unavailable".
func storeFull(err error) bool { return errors.Is(err, store.ErrFull) }

// errStoreFull is the answer to a write refused by a full store.
var errStoreFull = &apiError{http.StatusServiceUnavailable, client.CodeStoreUnavailable,
	"the session store is out of memory (Redis maxmemory reached): new sessions cannot be stored until an operator frees memory; existing sessions still resolve and sign out"}
