package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// MaxQueuedGets bounds the Gets waiting in the auto-pipeline (see
// Options.AutoPipelineGets). While Redis stalls, a Get over the bound fails
// at once, as store.ErrUnavailable, instead of queueing memory without
// limit behind requests whose callers have already given up.
const MaxQueuedGets = 10_000

// newGetPipeliner returns the client's deferred auto-pipeliner for Get.
// It is the deferred face, not the blocking one, because only the deferred
// face lets a caller stop waiting when its ctx ends (AutoFuture.WaitContext):
// a request's deadline must bound its Get, as it does on the plain client.
//
// go-redis keeps one deferred pipeliner per client and the options of its
// first user win: on a client whose pipeliner someone else made first,
// ours are ignored. Such a pipeliner is refused unless it keeps the
// promises Options.AutoPipelineGets makes: MaxQueuedGets as its queue
// bound (without it, a stalled Redis queues Gets without limit), and not
// full duplex (whose full window blocks Submit, ctx or not).
func newGetPipeliner(client goredis.UniversalClient) (*goredis.AutoPipeliner, error) {
	opts := goredis.DefaultAutoPipelineOptions()
	opts.MaxQueuedCommands = MaxQueuedGets
	ap, err := client.AsyncAutoPipelineWithOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("AutoPipelineGets on %T: %w", client, err)
	}
	if cfg := ap.Config(); cfg.MaxQueuedCommands != MaxQueuedGets || cfg.FullDuplex {
		return nil, fmt.Errorf("AutoPipelineGets: the client's auto-pipeliner was made with other options "+
			"(MaxQueuedCommands %d, FullDuplex %v; want %d, false): give the store a client of its own",
			cfg.MaxQueuedCommands, cfg.FullDuplex, MaxQueuedGets)
	}
	return ap, nil
}

// get is GET key: one round trip of its own on the plain client, or a
// place in the next pipelined batch with the other goroutines' Gets.
func (s *Store) get(ctx context.Context, key string) (string, error) {
	if s.gets == nil {
		return s.client.Get(ctx, key).Result()
	}
	cmd := goredis.NewStringCmd(ctx, "get", key)
	if err := s.gets.Submit(ctx, cmd).WaitContext(ctx); err != nil {
		if errors.Is(err, goredis.ErrAutoPipelineQueueFull) {
			return "", fmt.Errorf("%w (%d Gets waiting for Redis)", err, MaxQueuedGets)
		}
		return "", err
	}
	return cmd.Result()
}
