package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/redisconn"
)

// ErrFunctions is returned when the snapshot's function libraries cannot be restored into the
// target as they are (a server without functions, or a library of the same name with other
// code and neither Flush nor Replace). Nothing has been written then: a restore never drops
// them silently.
var ErrFunctions = errors.New("the snapshot's function libraries cannot be restored")

// targetFunctions returns the code of each library on o by name; ok is false for a server that
// has no functions (before 7.0).
func targetFunctions(ctx context.Context, o redisconn.Options) (byName map[string]string, ok bool, err error) {
	c := o.Client(0)
	defer c.Close()
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{WithCode: true}).Result()
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read the function libraries of %s: %w", o.Addr, err)
	}
	byName = map[string]string{}
	for _, l := range libs {
		byName[l.Name] = l.Code
	}
	return byName, true, nil
}

// checkFunctions fails with ErrFunctions, before anything is written, when a target cannot take
// the snapshot's libraries: it has no functions, or it has a library of the same name with
// other code and replace is false.
func checkFunctions(ctx context.Context, targets []redisconn.Options, codes []string, replace bool) error {
	if len(codes) == 0 {
		return nil
	}
	for _, o := range targets {
		have, ok, err := targetFunctions(ctx, o)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: the snapshot has %d function libraries and %s has no functions (a server older than 7.0): restore into a newer server", ErrFunctions, len(codes), o.Addr)
		}
		if replace {
			continue
		}
		for _, code := range codes {
			name := libraryName(code)
			if was, ok := have[name]; ok && was != code {
				return fmt.Errorf("%w: %s already has a function library %q with other code: refusing to replace it", ErrFunctions, o.Addr, name)
			}
		}
	}
	return nil
}

// loadFunctions loads each library into every target (FUNCTION LOAD REPLACE: checkFunctions has
// made sure that a library of the same name is the same code, or that replacing it was asked).
func loadFunctions(ctx context.Context, targets []redisconn.Options, codes []string) error {
	for _, o := range targets {
		c := o.Client(0)
		for _, code := range codes {
			if err := c.FunctionLoadReplace(ctx, code).Err(); err != nil {
				c.Close()
				return fmt.Errorf("load function library %q into %s: %w", libraryName(code), o.Addr, err)
			}
		}
		c.Close()
	}
	return nil
}

// verifyFunctions checks that every target has each library with the snapshot's code.
func verifyFunctions(ctx context.Context, targets []redisconn.Options, codes []string) error {
	if len(codes) == 0 {
		return nil
	}
	for _, o := range targets {
		have, _, err := targetFunctions(ctx, o)
		if err != nil {
			return err
		}
		for _, code := range codes {
			if name := libraryName(code); have[name] != code {
				return fmt.Errorf("%w: function library %q is not in %s after the restore", ErrKeyCount, name, o.Addr)
			}
		}
	}
	return nil
}

// libraryName returns the name a library's code declares in its first line ("#!lua name=x").
func libraryName(code string) string {
	first, _, _ := strings.Cut(code, "\n")
	for _, f := range strings.Fields(first) {
		if n, ok := strings.CutPrefix(f, "name="); ok {
			return n
		}
	}
	return ""
}
