package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// clusterGets batches Gets on Redis Cluster with one pipeliner per master,
// each on that master's own client, so that a master that stops answering
// holds up only the Gets of its own slots. (The cluster client's pipeliner
// queues several masters' slots together: with one master frozen, Gets of
// another master's users timed out behind it.)
type clusterGets struct {
	cluster *goredis.ClusterClient
	nodes   sync.Map // *goredis.Client (a master) -> *goredis.AutoPipeliner
}

// pipeliner returns the master serving key and its pipeliner, or a nil
// pipeliner if there is none to use now (the slot map cannot say, or the
// master's client is closed); the caller then sends a plain GET.
func (c *clusterGets) pipeliner(ctx context.Context, key string) (*goredis.Client, *goredis.AutoPipeliner) {
	node, err := c.cluster.MasterForKey(ctx, key)
	if err != nil {
		return nil, nil
	}
	if ap, ok := c.nodes.Load(node); ok {
		return node, ap.(*goredis.AutoPipeliner)
	}
	ap, err := newGetPipeliner(node)
	if err != nil {
		return node, nil
	}
	c.nodes.Store(node, ap)
	return node, ap
}

// get is GET key: one round trip of its own on the plain client, or a
// place in the next pipelined batch with the other goroutines' Gets.
func (s *Store) get(ctx context.Context, key string) (string, error) {
	switch {
	case s.gets != nil:
		return pipelinedGet(ctx, s.gets, key)
	case s.clusterGets != nil:
		node, ap := s.clusterGets.pipeliner(ctx, key)
		if ap == nil {
			return s.client.Get(ctx, key).Result()
		}
		v, err := pipelinedGet(ctx, ap, key)
		// A master's client follows no redirect: a slot that moved
		// (MOVED, ASK) or a master the cluster client has let go
		// (ErrClosed, whose pipeliner is then forgotten) is the cluster
		// client's to handle, and its GET also refreshes the slot map.
		_, moved := goredis.IsMovedError(err)
		_, ask := goredis.IsAskError(err)
		if errors.Is(err, goredis.ErrClosed) {
			s.clusterGets.nodes.Delete(node)
		}
		if moved || ask || errors.Is(err, goredis.ErrClosed) {
			return s.client.Get(ctx, key).Result()
		}
		return v, err
	default:
		return s.client.Get(ctx, key).Result()
	}
}

// pipelinedGet is GET key through ap, waiting no longer than ctx allows.
func pipelinedGet(ctx context.Context, ap *goredis.AutoPipeliner, key string) (string, error) {
	cmd := goredis.NewStringCmd(ctx, "get", key)
	if err := ap.Submit(ctx, cmd).WaitContext(ctx); err != nil {
		if errors.Is(err, goredis.ErrAutoPipelineQueueFull) {
			return "", fmt.Errorf("%w (%d Gets waiting for Redis)", err, MaxQueuedGets)
		}
		return "", err
	}
	return cmd.Result()
}
