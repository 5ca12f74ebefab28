package main

import (
	"net/http"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/client"
)

// storeFull reports whether err is Redis refusing a write because it is
// at maxmemory with the noeviction policy ("OOM command not allowed when
// used memory > 'maxmemory'"). Sign-ins then fail while reads and
// sign-outs (deletes) still work, and the operator, not a retry, fixes it:
// the answer says so instead of the generic "unavailable".
func storeFull(err error) bool { return goredis.IsOOMError(err) }

// errStoreFull is the answer to a write refused by a full store.
var errStoreFull = &apiError{http.StatusServiceUnavailable, client.CodeStoreUnavailable,
	"the session store is out of memory (Redis maxmemory reached): new sessions cannot be stored until an operator frees memory; existing sessions still resolve and sign out"}
