package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is the local server tests use unless LETHE_TEST_REDIS_URL says otherwise.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Redis is one test's share of the local Redis server: a key prefix of its
// own in the database of LETHE_TEST_REDIS_URL, so tests run in parallel
// (databases are few and shared by every package).
type Redis struct {
	// URL of the server and database, for the code under test.
	URL string
	// Prefix starts every key the test may write: lethe-test:<random>:.
	Prefix string
	// Client is connected to URL, for setting up and inspecting keys.
	Client *redis.Client
}

// NewRedis connects to LETHE_TEST_REDIS_URL (default DefaultRedisURL), picks a
// fresh prefix, and when the test ends deletes every key under it (SCAN and
// UNLINK, never FLUSHDB: other tests share the database). It fails the test
// when the server cannot be reached: these tests are about the real server.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	url := os.Getenv("LETHE_TEST_REDIS_URL")
	if url == "" {
		url = DefaultRedisURL
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("LETHE_TEST_REDIS_URL must be a redis:// URL: %v", err)
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		t.Fatalf("connecting to the test Redis server: %v", err)
	}
	r := &Redis{URL: url, Prefix: "lethe-test:" + redisToken() + ":", Client: client}
	t.Cleanup(func() {
		defer client.Close()
		if err := r.unlinkPrefix(); err != nil {
			t.Errorf("cleaning up redis prefix %s: %v", r.Prefix, err)
		}
	})
	return r
}

// Key returns Prefix + suffix.
func (r *Redis) Key(suffix string) string { return r.Prefix + suffix }

// Keys lists the keys under the prefix (SCAN), sorted, for assertions.
func (r *Redis) Keys(t testing.TB) []string {
	t.Helper()
	keys, err := r.scanPrefix(context.Background())
	if err != nil {
		t.Fatalf("scanning redis prefix: %v", err)
	}
	return keys
}

// unlinkPrefix deletes every key under the prefix. It uses its own context:
// the test's is already cancelled when cleanups run.
func (r *Redis) unlinkPrefix() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := r.scanPrefix(ctx)
	if err != nil || len(keys) == 0 {
		return err
	}
	return r.Client.Unlink(ctx, keys...).Err()
}

func (r *Redis) scanPrefix(ctx context.Context) ([]string, error) {
	// The prefix is letters, digits, - and :, so it needs no glob escaping.
	var keys []string
	iter := r.Client.Scan(ctx, 0, r.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	slices.Sort(keys)
	return slices.Compact(keys), iter.Err() // SCAN may return a key twice
}

func redisToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
