package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
)

// arg declares one accepted argument: its name, whether it is required, and
// where to decode it (a pointer to string, uint64 or bool).
type arg struct {
	name     string
	required bool
	dst      any
}

// parseArgs decodes args strictly before anything runs: unknown keys,
// missing required keys, nulls and wrong JSON types are InvalidArgument, so
// a typo in the driver fails loudly instead of being ignored.
func parseArgs(method string, args map[string]json.RawMessage, specs ...arg) error {
	known := map[string]bool{}
	for _, s := range specs {
		known[s.name] = true
	}
	var unknown []string
	for k := range args {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: unknown argument(s) %s", method, strings.Join(unknown, ", "))
	}
	for _, s := range specs {
		raw, ok := args[s.name]
		if !ok {
			if s.required {
				return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: missing required argument %s", method, s.name)
			}
			continue
		}
		if string(raw) == "null" {
			if s.required {
				return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: argument %s must not be null", method, s.name)
			}
			continue
		}
		if err := json.Unmarshal(raw, s.dst); err != nil {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: argument %s must be %s", method, s.name, typeName(s.dst))
		}
	}
	return nil
}

func typeName(dst any) string {
	switch dst.(type) {
	case *string:
		return "a string"
	case *uint64:
		return "a non-negative integer"
	case *bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", dst)
}
