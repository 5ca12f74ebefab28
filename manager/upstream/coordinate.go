package upstream

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Coordinator is shared storage that lets several processes (sessiond
// instances behind one load balancer) exchange one refresh token at the
// upstream only once: the first to take a short lock calls the upstream
// and saves the result; the others wait for it and use it. An upstream
// that rotates refresh tokens then never sees the old one twice, which it
// would refuse (or treat as token theft and revoke the whole family).
//
// Keys are opaque short strings (hex); values are opaque bytes, already
// encrypted. store/redis.Coordinator implements it on Redis.
type Coordinator interface {
	// TryLock takes the lock named key for ttl if nobody holds it and
	// reports whether it did. The lock ends at ttl or when release is
	// called, whichever is first; release never ends a lock that expired
	// and was taken by someone else.
	TryLock(ctx context.Context, key string, ttl time.Duration) (release func(context.Context), ok bool, err error)
	// Load returns the value saved under key, or nil and no error when
	// there is none (never saved, or expired).
	Load(ctx context.Context, key string) ([]byte, error)
	// Save stores value under key for ttl.
	Save(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// DefaultSharedRefreshWindow is how long a refresh result stays shared
// through a Coordinator when Config.RefreshReuseWindow is zero.
const DefaultSharedRefreshWindow = 10 * time.Second

// coordPoll is how often a process waiting for another's refresh looks
// for the result.
const coordPoll = 20 * time.Millisecond

// coordKeys derives, from the old refresh token, the name its lock and
// result are stored under and the key that encrypts the result. Both are
// one-way: whoever reads the shared storage learns neither the old token
// nor (without the old token) the new ones.
func coordKeys(refreshToken string) (id string, key [32]byte) {
	idSum := sha256.Sum256([]byte("sessiond refresh id\x00" + refreshToken))
	return hex.EncodeToString(idSum[:]), sha256.Sum256([]byte("sessiond refresh key\x00" + refreshToken))
}

// sharedResult is what is saved, encrypted, for the other processes: the
// new tokens, or the upstream's refusal of the old one.
type sharedResult struct {
	AccessToken  string    `json:"a,omitempty"`
	RefreshToken string    `json:"r,omitempty"`
	ExpiresAt    time.Time `json:"e,omitzero"`
	Refused      bool      `json:"x,omitempty"`
}

// newAEAD is AES-256-GCM under key, the cipher of seal and unseal.
func newAEAD(key [32]byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(key [32]byte, id string, r sharedResult) ([]byte, error) {
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(id)), nil
}

func unseal(key [32]byte, id string, sealed []byte) (*sharedResult, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("shared refresh result too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, errors.New("shared refresh result does not decrypt")
	}
	var r sharedResult
	if err := json.Unmarshal(plain, &r); err != nil {
		return nil, errors.New("shared refresh result is malformed")
	}
	return &r, nil
}

// coordinatedRefresh is refresh shared across processes through
// c.coord; without a Coordinator it is refresh itself. ctx has no
// caller's cancellation (see Refresh); the wait is bounded here.
func (c *Client) coordinatedRefresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	if c.coord == nil {
		return c.refresh(ctx, refreshToken)
	}
	id, key := coordKeys(refreshToken)
	lockKey, resultKey := "lock:"+id, "result:"+id
	// The holder's upstream call is bounded by Timeout; its lock outlives
	// it a little, so that a holder that died is replaced, not doubled.
	lockTTL := c.timeout + time.Second
	ctx, cancel := context.WithTimeout(ctx, 2*lockTTL)
	defer cancel()
	unavailable := func(what string, err error) error {
		// Without coordination a refresh could be spent twice: answer
		// "try again" rather than risk the user's token family.
		return fmt.Errorf("upstream: refresh: %w: coordination: %s: %w", ErrUnavailable, what, err)
	}
	load := func() (*Tokens, bool, error) {
		b, err := c.coord.Load(ctx, resultKey)
		if err != nil || b == nil {
			return nil, false, err
		}
		r, err := unseal(key, id, b)
		if err != nil {
			return nil, false, err
		}
		if r.Refused {
			return nil, true, fmt.Errorf("upstream: refresh: %w (shared result)", ErrUnauthorized)
		}
		return &Tokens{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, ExpiresAt: r.ExpiresAt}, true, nil
	}
	for {
		t, found, err := load()
		if found {
			return t, err
		}
		if err != nil {
			return nil, unavailable("load", err)
		}
		release, locked, err := c.coord.TryLock(ctx, lockKey, lockTTL)
		if err != nil {
			return nil, unavailable("lock", err)
		}
		if locked {
			return c.refreshAndShare(ctx, refreshToken, id, key, resultKey, release, load)
		}
		select {
		case <-ctx.Done():
			return nil, unavailable("wait for another instance's refresh", ctx.Err())
		case <-time.After(coordPoll):
		}
	}
}

// refreshAndShare runs under the lock: it checks once more for a result
// (the previous holder may have saved it just before releasing), calls
// the upstream, and saves the outcome for the other processes.
func (c *Client) refreshAndShare(ctx context.Context, refreshToken, id string, key [32]byte, resultKey string,
	release func(context.Context), load func() (*Tokens, bool, error)) (*Tokens, error) {
	defer release(context.WithoutCancel(ctx))
	if t, found, err := load(); found {
		return t, err
	}
	t, err := c.refresh(ctx, refreshToken)
	var shared sharedResult
	switch {
	case err == nil:
		shared = sharedResult{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt}
	case errors.Is(err, ErrUnauthorized):
		shared = sharedResult{Refused: true}
	default:
		// Unavailable: nothing was spent for sure; the next caller tries
		// again.
		return nil, err
	}
	window := c.reuseWindow
	if window <= 0 {
		window = DefaultSharedRefreshWindow
	}
	if sealed, serr := seal(key, id, shared); serr == nil {
		// A failed save costs only a wait: the others find no result,
		// take the lock once it is released and call the upstream.
		_ = c.coord.Save(ctx, resultKey, sealed, window)
	}
	return t, err
}
