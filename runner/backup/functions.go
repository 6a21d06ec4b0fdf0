package backup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// readFunctions returns the code of the source's function libraries (FUNCTION LIST WITHCODE),
// for a backup by DUMP, which does not see them: they are saved in the manifest and loaded by a
// restore. A server older than 7.0 has none. Each master of a cluster has its own libraries
// (FUNCTION LOAD is not propagated across shards): they are read from every master, and two
// masters with different code under one library name fail the backup, since a restore could
// not give every master the same libraries.
func readFunctions(ctx context.Context, opts Options, client *redis.Client, plan *clusterPlan) ([]string, error) {
	if plan == nil {
		return listFunctions(ctx, client, opts.Redis.Addr)
	}
	byName := map[string]string{}
	for _, m := range plan.masters {
		o := opts.Redis.WithAddr(m.Addr)
		c := o.Client(0)
		codes, err := listFunctions(ctx, c, o.Addr)
		c.Close()
		if err != nil {
			return nil, err
		}
		for _, code := range codes {
			name := LibraryName(code)
			if was, ok := byName[name]; ok && was != code {
				return nil, fmt.Errorf("function library %q differs between the masters of the cluster (at %s): load the same code on every master, then back up", name, m.Addr)
			}
			byName[name] = code
		}
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, byName[name])
	}
	return out, nil
}

// listFunctions reads FUNCTION LIST WITHCODE; a server that does not know the command (before
// 7.0) has no libraries.
func listFunctions(ctx context.Context, c *redis.Client, addr string) ([]string, error) {
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{WithCode: true}).Result()
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return nil, nil
		}
		return nil, fmt.Errorf("read the function libraries of %s (FUNCTION LIST WITHCODE): %w", addr, err)
	}
	var out []string
	for _, l := range libs {
		out = append(out, l.Code)
	}
	return out, nil
}

// LibraryName returns the name a library's code declares in its first line
// ("#!lua name=mylib"), or "" when it has none.
func LibraryName(code string) string {
	first, _, _ := strings.Cut(code, "\n")
	for _, f := range strings.Fields(first) {
		if n, ok := strings.CutPrefix(f, "name="); ok {
			return n
		}
	}
	return ""
}
