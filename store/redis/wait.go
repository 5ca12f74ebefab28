package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultWaitTimeout is Options.WaitTimeout's default.
const DefaultWaitTimeout = 200 * time.Millisecond

// waitOptions checks and completes the WAIT options.
func waitOptions(opts Options) (Options, error) {
	if opts.WaitReplicas < 0 || opts.WaitTimeout < 0 {
		return opts, errors.New("redis: new store: WaitReplicas and WaitTimeout must not be negative")
	}
	if opts.WaitReplicas > 0 && opts.WaitTimeout == 0 {
		opts.WaitTimeout = DefaultWaitTimeout
	}
	return opts, nil
}

// revoke runs a revocation script. With WaitReplicas it runs the script
// and WAIT in one pipeline, on one connection, since WAIT waits for the
// writes of its own connection; the script goes as EVAL (its source) so
// the pipeline needs no NOSCRIPT fallback. Revocations are rare; the
// extra bytes do not matter.
//
// On Redis Cluster a pipeline would send the keyless WAIT to any node,
// so the pipeline runs on the client of the master that serves the
// keys' slot (every key of a revocation shares one hash tag). That node
// client follows no redirect: during a resharding or after a failover
// the script is answered MOVED or ASK (and not run), or the old master is
// unreachable or now a replica (READONLY). The revocation then fails,
// wrapped as store.ErrUnavailable by its caller like any other failure,
// so it is never reported done when it was not; and the cluster client
// is told to reload its slot map, so the caller's retry reaches the
// slot's current master. Following the redirect here instead would mean
// re-implementing go-redis's ASKING and retry logic for a rare case that
// the retry the caller owes an ErrUnavailable already covers.
func (s *Store) revoke(ctx context.Context, script *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	if s.waitReplicas <= 0 {
		return script.Run(ctx, s.client, keys, args...)
	}
	cluster, ok := s.client.(*goredis.ClusterClient)
	if !ok {
		return s.evalWait(ctx, s.client, script, keys, args)
	}
	node, err := cluster.MasterForKey(ctx, keys[0])
	if err != nil {
		res := goredis.NewCmd(ctx)
		res.SetErr(err)
		return res
	}
	res := s.evalWait(ctx, node, script, keys, args)
	if res.Err() != nil {
		// The node may no longer serve the slot (even too few
		// acknowledgements can mean its replica was promoted). A reload
		// is one CLUSTER SLOTS in the background, at most one at a time
		// and five a second; it is not worth telling the causes apart.
		cluster.ReloadState(ctx)
	}
	return res
}

// evalWait runs script and WAIT in one pipeline on c.
func (s *Store) evalWait(ctx context.Context, c goredis.Cmdable, script *goredis.Script, keys []string, args []any) *goredis.Cmd {
	var res *goredis.Cmd
	var acked *goredis.Cmd
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		res = script.Eval(ctx, p, keys, args...)
		acked = p.Do(ctx, "WAIT", s.waitReplicas, s.waitTimeout.Milliseconds())
		return nil
	})
	switch {
	case res.Err() != nil:
	case err != nil:
		res.SetErr(err)
	default:
		if n, err := acked.Int64(); err != nil {
			res.SetErr(err)
		} else if n < int64(s.waitReplicas) {
			res.SetErr(fmt.Errorf("revocation acknowledged by %d of %d replicas within %v", n, s.waitReplicas, s.waitTimeout))
		}
	}
	return res
}
