package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aos-agent/aos-agent/agent/rpc"
)

func init() {
	register("call", "call an RPC method on an agent and print the JSON reply", runCall)
}

func runCall(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	defaultURL := os.Getenv("AOS_TRANSPORT_URL")
	if defaultURL == "" {
		defaultURL = "rabbit://guest:guest@127.0.0.1:5672/"
	}
	url := fs.String("transport-url", defaultURL, "oslo transport URL (default $AOS_TRANSPORT_URL)")
	exchange := fs.String("exchange", "openstack", "control exchange")
	topic := fs.String("topic", "aos-agent", "RPC topic")
	timeout := fs.Duration("timeout", 60*time.Second, "reply timeout")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: aos-agent call [flags] HOST METHOD [key=value ...]\n"+
			"HOST \"\" calls any agent of the topic; values are JSON when valid JSON, else strings.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return 2
	}
	host, method := fs.Arg(0), fs.Arg(1)
	kwargs := map[string]json.RawMessage{}
	for _, kv := range fs.Args()[2:] {
		k, v, err := rpc.ParseArg(kv)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent call:", err)
			return 2
		}
		kwargs[k] = v
	}
	client, err := rpc.NewClient(rpc.Config{URL: *url, Exchange: *exchange, Topic: *topic, Server: host})
	if err != nil {
		fmt.Fprintln(os.Stderr, "aos-agent call:", err)
		return 2
	}
	defer client.Close()
	result, err := client.Call(ctx, host, method, kwargs, *timeout)
	if err != nil {
		var re *rpc.RemoteError
		if errors.As(err, &re) {
			fmt.Fprintf(os.Stderr, "%s: %s\n", re.Class, re.Message)
		} else {
			fmt.Fprintln(os.Stderr, "aos-agent call:", err)
		}
		return 1
	}
	fmt.Println(string(result))
	return 0
}
