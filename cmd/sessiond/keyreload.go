package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"slices"
	"time"
)

// watchAPIKeys keeps the keys of --api-key-file current without a restart,
// so a key can be rotated (add the new one, move the callers, remove the
// old one) on a running fleet. It re-reads the file on each value from hup
// (SIGHUP) and from tick (every --api-key-file-reload: a Kubernetes Secret
// mounted as a file changes in place, with no signal). A reload that fails
// (the file is unreadable, holds no key, or a key that is too short)
// changes nothing: the current keys stay in force, and the failure is
// logged, key not shown, and counted. It returns when ctx is done.
func watchAPIKeys(ctx context.Context, cfg *config, auth *authenticator, log *slog.Logger, met *metrics, hup <-chan os.Signal, tick <-chan time.Time) {
	for {
		var signalled bool
		select {
		case <-ctx.Done():
			return
		case <-hup:
			signalled = true
		case <-tick:
		}
		reloadAPIKeys(cfg, auth, log, met, signalled)
	}
}

// reloadAPIKeys is one reload of watchAPIKeys. A periodic check that finds
// the same keys says nothing; one asked for by a signal says so.
func reloadAPIKeys(cfg *config, auth *authenticator, log *slog.Logger, met *metrics, signalled bool) {
	keys, err := apiKeys(cfg)
	if err != nil {
		met.keyReloads.WithLabelValues("error").Inc()
		log.Error("API key reload failed; the current keys stay in force", "err", err.Error())
		return
	}
	old := auth.keys.Load()
	var sums [][sha256.Size]byte
	var ids []string
	for _, k := range keys {
		sum := sha256.Sum256([]byte(k))
		sums = append(sums, sum)
		ids = append(ids, keyID(sum))
	}
	// Whether the keys changed is decided on the full digests: the
	// fingerprints are 4 bytes, and a new key sharing an old one's would
	// otherwise be taken for it and never put in force.
	if sameSums(old.sums, sums) {
		if signalled {
			log.Info("API keys reloaded: unchanged", "api_keys", len(keys))
		}
		return
	}
	added, removed := diffIDs(old.ids, ids)
	auth.setKeys(keys)
	met.keyReloads.WithLabelValues("changed").Inc()
	log.Info("API keys reloaded", "api_keys", len(keys), "added", added, "removed", removed)
}

// sameSums reports whether a and b hold the same digests, in any order.
func sameSums(a, b [][sha256.Size]byte) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// diffIDs returns the key fingerprints in next but not in prev, and those
// in prev but not in next.
func diffIDs(prev, next []string) (added, removed []string) {
	for _, id := range next {
		if !slices.Contains(prev, id) {
			added = append(added, id)
		}
	}
	for _, id := range prev {
		if !slices.Contains(next, id) {
			removed = append(removed, id)
		}
	}
	return added, removed
}
