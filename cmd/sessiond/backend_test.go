package main

import (
	"os"
	"path/filepath"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestRedisClient: each way of naming Redis builds the matching client,
// with the credential and TLS flags applied. Nothing is dialled.
func TestRedisClient(t *testing.T) {
	rc, err := redisClient(&config{RedisURL: "redis://user:urlpass@db.internal:6380/2", RedisPassword: "flagpass"})
	require.NoError(t, err)
	c, ok := rc.(*goredis.Client)
	require.True(t, ok, "a URL gives a standalone client, got %T", rc)
	o := c.Options()
	require.Equal(t, "db.internal:6380", o.Addr)
	require.Equal(t, 2, o.DB)
	require.Equal(t, "user", o.Username)
	require.Equal(t, "flagpass", o.Password, "--redis-password overrides the URL's")
	require.Nil(t, o.TLSConfig)
	require.NoError(t, rc.Close())

	rc, err = redisClient(&config{RedisURL: "redis://db.internal:6380", RedisTLS: true})
	require.NoError(t, err)
	o = rc.(*goredis.Client).Options()
	require.NotNil(t, o.TLSConfig)
	require.Equal(t, "db.internal", o.TLSConfig.ServerName)
	require.NoError(t, rc.Close())

	rc, err = redisClient(&config{RedisClusterAddrs: []string{"a:1", "b:2"}, RedisUsername: "u"})
	require.NoError(t, err)
	cc, ok := rc.(*goredis.ClusterClient)
	require.True(t, ok, "cluster addresses give a cluster client, got %T", rc)
	require.Equal(t, []string{"a:1", "b:2"}, cc.Options().Addrs)
	require.Equal(t, "u", cc.Options().Username)
	require.NoError(t, rc.Close())

	rc, err = redisClient(&config{RedisSentinelMaster: "mymaster", RedisSentinelAddrs: []string{"s:26379"}})
	require.NoError(t, err)
	_, ok = rc.(*goredis.Client)
	require.True(t, ok, "Sentinel gives a failover client, got %T", rc)
	require.NoError(t, rc.Close())

	// A private CA for TLS.
	dir := t.TempDir()
	ca := newTestCA(t, "redis CA")
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))
	rc, err = redisClient(&config{RedisURL: "rediss://db.internal:6380", RedisTLSCA: caFile})
	require.NoError(t, err)
	o = rc.(*goredis.Client).Options()
	require.NotNil(t, o.TLSConfig.RootCAs)
	require.NoError(t, rc.Close())

	require.NoError(t, os.WriteFile(caFile, []byte("not pem"), 0o600))
	_, err = redisClient(&config{RedisURL: "rediss://db.internal:6380", RedisTLSCA: caFile})
	require.ErrorContains(t, err, "no PEM certificate")

	// A URL that does not parse is refused without echoing it.
	_, err = redisClient(&config{RedisURL: "redis://user:secret@host:notaport"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
}
