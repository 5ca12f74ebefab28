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
func waitOptions(client goredis.UniversalClient, opts Options) (Options, error) {
	if opts.WaitReplicas < 0 || opts.WaitTimeout < 0 {
		return opts, errors.New("redis: new store: WaitReplicas and WaitTimeout must not be negative")
	}
	if opts.WaitReplicas == 0 {
		return opts, nil
	}
	if _, ok := client.(*goredis.ClusterClient); ok {
		// WAIT counts the replicas of the node it runs on; a cluster
		// pipeline sends a keyless command to any node.
		return opts, errors.New("redis: new store: WaitReplicas is not supported on Redis Cluster")
	}
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = DefaultWaitTimeout
	}
	return opts, nil
}

// revoke runs a revocation script. With WaitReplicas it runs the script
// and WAIT in one pipeline, on one connection, since WAIT waits for the
// writes of its own connection; the script goes as EVAL (its source) so
// the pipeline needs no NOSCRIPT fallback. Revocations are rare; the
// extra bytes do not matter.
func (s *Store) revoke(ctx context.Context, script *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	if s.waitReplicas <= 0 {
		return script.Run(ctx, s.client, keys, args...)
	}
	var res *goredis.Cmd
	var acked *goredis.Cmd
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		res = script.Eval(ctx, p, keys, args...)
		acked = p.Do(ctx, "WAIT", s.waitReplicas, s.waitTimeout.Milliseconds())
		return nil
	})
	switch {
	case res.Err() != nil:
		return res
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
