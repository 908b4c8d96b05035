//go:build integration

package rpc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// tlsBroker returns the amqps:// URL and certificate directory of the TLS
// listener scripts/rabbitmq.sh opens with AOS_RABBIT_TLS=1.
func tlsBroker(t *testing.T) (url, dir string) {
	t.Helper()
	url, dir = os.Getenv("AOS_TEST_AMQPS_URL"), os.Getenv("AOS_TEST_TLS_DIR")
	if url == "" {
		t.Fatalf("AOS_TEST_AMQPS_URL/AOS_TEST_TLS_DIR not set: start the broker with AOS_RABBIT_TLS=1 scripts/rabbitmq.sh: url = %v, want != \"\"", url)
	}
	if dir == "" {
		t.Fatalf("AOS_TEST_AMQPS_URL/AOS_TEST_TLS_DIR not set: start the broker with AOS_RABBIT_TLS=1 scripts/rabbitmq.sh: dir = %v, want != \"\"", dir)
	}
	return url, dir
}

func TestIntegrationTLS(t *testing.T) {
	url, dir := tlsBroker(t)
	pem := func(name string) string { return filepath.Join(dir, name+".pem") }
	cases := []struct {
		name          string
		ca, cert, key string
	}{
		{"ca-only", pem("ca"), "", ""},
		{"mutual", pem("ca"), pem("client"), pem("client-key")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: url, Topic: "go-tls-" + newID()[:8], Server: "host1", Logger: zaptest.NewLogger(t),
				CAFile: tc.ca, CertFile: tc.cert, KeyFile: tc.key, ShutdownTimeout: 5 * time.Second}
			tcfg, err := cfg.withDefaults().tlsConfig()
			if err != nil {
				t.Fatalf("tls config: err = %v, want nil", err)
			}
			if tcfg.InsecureSkipVerify {
				t.Fatal("tls config: tcfg.InsecureSkipVerify = true, want false")
			}
			srv, err := NewServer(cfg, Dispatcher{Version: "1.0", Methods: map[string]Handler{
				"echo": func(_ context.Context, r *Request) (any, error) { return r.Args, nil },
			}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = srv.Stop(context.Background()) }()
			client, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			res, err := client.Call(ctx, "host1", "echo", map[string]string{"over": "tls"}, 10*time.Second)
			if err != nil {
				t.Fatalf("call over amqps: err = %v, want nil", err)
			}
			if string(res) != `{"over":"tls"}` {
				t.Fatalf("call over amqps: string(res) = %q, want `{\"over\":\"tls\"}`", string(res))
			}
			if tc.cert != "" {
				// The broker saw and verified our certificate (verify_peer).
				out := rabbitctl(t, "list_connections", "peer_cert_subject", "peer_cert_issuer")
				if !strings.Contains(out, "CN=client") {
					t.Fatalf("broker lists no connection with our client certificate:\\\\n: out = %q, want it to contain \"CN=client\"", out)
				}
				if !strings.Contains(out, "CN=aos-test-ca") {
					t.Fatalf("broker lists no connection with our client certificate:\\\\n: out = %q, want it to contain \"CN=aos-test-ca\"", out)
				}
			}
		})
	}
}

// rabbitctl runs rabbitmqctl against the test broker.
func rabbitctl(t *testing.T, args ...string) string {
	t.Helper()
	sh := os.Getenv("AOS_RABBIT_SH")
	if sh == "" {
		t.Fatal("AOS_RABBIT_SH not set: the path of scripts/rabbitmq.sh")
	}
	out, err := exec.Command("bash", append([]string{sh, "ctl", "-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestIntegrationTLSRefused(t *testing.T) {
	url, dir := tlsBroker(t)
	pass := strings.Split(strings.SplitN(url, "@", 2)[0], ":")[2]
	pem := func(name string) string { return filepath.Join(dir, name+".pem") }
	cases := []struct {
		name, ca, cert, key, want string
	}{
		// The broker's certificate is not signed by the CA we trust.
		{"wrong-ca", pem("other-ca"), "", "", "certificate signed by unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: url, Topic: "go-tls-" + newID()[:8], Logger: zaptest.NewLogger(t),
				CAFile: tc.ca, CertFile: tc.cert, KeyFile: tc.key}
			client, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			_, err = client.Call(context.Background(), "", "echo", nil, 10*time.Second)
			if err == nil {
				t.Fatal("want an error containing: err = nil, want non-nil")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing: err.Error() = %q, want it to contain %q", err.Error(), tc.want)
			}
			if strings.Contains(err.Error(), pass) {
				t.Fatalf("error leaks the password: %v", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}
