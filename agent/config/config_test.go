package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFullFile(t *testing.T) {
	c, err := Load("../../configs/aos-agent.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "compute1" {
		t.Fatalf("defaults section: c.Host = %q, want \"compute1\"", c.Host)
	}
	if c.Topic != "aos-agent" {
		t.Fatalf("defaults section: c.Topic = %q, want \"aos-agent\"", c.Topic)
	}
	if c.ControlExchange != "openstack" {
		t.Fatalf("defaults section: c.ControlExchange = %q, want \"openstack\"", c.ControlExchange)
	}
	if len(c.LVM.VolumeGroups) != 1 {
		t.Fatalf("lvm: len(c.LVM.VolumeGroups) = %v, want 1", len(c.LVM.VolumeGroups))
	}
	if c.LVM.VolumeGroups[0] != "vol" {
		t.Fatalf("lvm: c.LVM.VolumeGroups[0] = %q, want \"vol\"", c.LVM.VolumeGroups[0])
	}
	if c.LVM.MultipathAlias != "sanlock" {
		t.Fatalf("lvm: c.LVM.MultipathAlias = %q, want \"sanlock\"", c.LVM.MultipathAlias)
	}
	if c.LVM.CommandTimeout != 60*time.Second {
		t.Fatalf("timeouts: c.LVM.CommandTimeout = %v, want %v", c.LVM.CommandTimeout, 60*time.Second)
	}
	if c.LVM.LockStartTimeout != 5*time.Minute {
		t.Fatalf("timeouts: c.LVM.LockStartTimeout = %v, want %v", c.LVM.LockStartTimeout, 5*time.Minute)
	}
}

func TestParseValues(t *testing.T) {
	in := `
# comment
[DEFAULT]
host: node-7
transport_url = amqps://u:p@h1:5671,u:p@h2:5671/cinder
log_level = debug
state_dir = /srv/aos
[oslo_messaging_rabbit]
amqp_durable_queues = yes
rabbit_quorum_queue = 1
amqp_auto_delete = off
rabbit_ha_queues = false
ssl_ca_file = /etc/ca.pem
ssl_cert_file = /etc/c.pem
ssl_key_file = /etc/k.pem
[lvm]
volume_groups = vol, vol2
command_timeout = 90
lock_start_timeout = 10m
multipath_alias = lun0
[recovery]
mode = manual
libvirt_uri =
[metrics]
listen =
`
	c, err := Parse("x.conf", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "node-7" {
		t.Fatalf("c.Host = %q, want \"node-7\"", c.Host)
	}
	if !c.Rabbit.DurableQueues {
		t.Fatal("c.Rabbit.DurableQueues = false, want true")
	}
	if !c.Rabbit.QuorumQueues {
		t.Fatal("c.Rabbit.QuorumQueues = false, want true")
	}
	if c.Rabbit.AutoDelete {
		t.Fatal("c.Rabbit.AutoDelete = true, want false")
	}
	if c.Rabbit.SSLKeyFile != "/etc/k.pem" {
		t.Fatalf("c.Rabbit.SSLKeyFile = %q, want \"/etc/k.pem\"", c.Rabbit.SSLKeyFile)
	}
	if strings.Join(c.LVM.VolumeGroups, "|") != "vol|vol2" {
		t.Fatalf("strings.Join(c.LVM.VolumeGroups, \"|\") = %q, want \"vol|vol2\"", strings.Join(c.LVM.VolumeGroups, "|"))
	}
	if c.LVM.CommandTimeout != 90*time.Second {
		t.Fatalf("c.LVM.CommandTimeout = %v, want %v", c.LVM.CommandTimeout, 90*time.Second)
	}
	if c.LVM.LockStartTimeout != 10*time.Minute {
		t.Fatalf("c.LVM.LockStartTimeout = %v, want %v", c.LVM.LockStartTimeout, 10*time.Minute)
	}
	if c.Recovery.Mode != "manual" {
		t.Fatalf("c.Recovery.Mode = %q, want \"manual\"", c.Recovery.Mode)
	}
	if c.Recovery.LibvirtURI != "" {
		t.Fatalf("c.Recovery.LibvirtURI = %q, want \"\"", c.Recovery.LibvirtURI)
	}
	if c.Metrics.Listen != "" {
		t.Fatalf("c.Metrics.Listen = %q, want \"\"", c.Metrics.Listen)
	}
	if c.LogLevel != "debug" {
		t.Fatalf("c.LogLevel = %q, want \"debug\"", c.LogLevel)
	}
	if c.StateDir != "/srv/aos" {
		t.Fatalf("c.StateDir = %q, want \"/srv/aos\"", c.StateDir)
	}
}

func TestParseErrorsNameLineAndKey(t *testing.T) {
	in := "[DEFAULT]\ntransport_url = http://x\nbogus = 1\n[lvm]\nvolume_groups = a, a\ncommand_timeout = -3\n[nope]\nx=1\n[recovery]\nmode = sometimes\n[metrics]\nlisten = nowhere\nnot a pair\n[broken\n"
	_, err := Parse("agent.conf", strings.NewReader(in))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"agent.conf:2: [DEFAULT] transport_url",
		"agent.conf:3: [DEFAULT] bogus: unknown key",
		`agent.conf:5: [lvm] volume_groups: volume group "a" listed twice`,
		"agent.conf:6: [lvm] command_timeout",
		"agent.conf:7: [nope] : unknown section",
		"agent.conf:10: [recovery] mode",
		"agent.conf:12: [metrics] listen",
		`agent.conf:13: [metrics] not a pair: expected "key = value"`,
		"agent.conf:14: [metrics] [broken: malformed section header",
		"agent.conf: [lvm] volume_groups: required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestMoreErrors(t *testing.T) {
	for _, in := range []string{
		"host = x\n",
		"[DEFAULT]\nhost =\n[lvm]\nvolume_groups=v\n",
		"[DEFAULT]\nstate_dir = relative\n[lvm]\nvolume_groups=v\n",
		"[oslo_messaging_rabbit]\namqp_durable_queues = maybe\n[lvm]\nvolume_groups=v\n",
		"[lvm]\nvolume_groups = ,\n",
		"[lvm]\nvolume_groups=v\nlock_start_timeout = soon\n",
		"[lvm]\nvolume_groups=v\n[recovery]\nlibvirt_uri = qemu\n",
	} {
		if _, err := Parse("f", strings.NewReader(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none.conf")); !os.IsNotExist(err) {
		t.Fatalf("want not-exist, got %v", err)
	}
}

func TestSSLFilesNeedTLS(t *testing.T) {
	const vg = "[lvm]\nvolume_groups = v\n"
	for _, tc := range []struct {
		name, in string
		want     []string // how each error starts, in file order; none: valid
		fix      string   // what every error must tell the operator to do
	}{
		{"files with rabbit://", "[DEFAULT]\ntransport_url = rabbit://u:secret@h/\n[oslo_messaging_rabbit]\nssl_ca_file = /ca.pem\nssl_cert_file = /c.pem\nssl_key_file = /k.pem\n" + vg,
			[]string{"f:4: [oslo_messaging_rabbit] ssl_ca_file: TLS is off", "f:5: [oslo_messaging_rabbit] ssl_cert_file: TLS is off", "f:6: [oslo_messaging_rabbit] ssl_key_file: TLS is off"},
			"set ssl = true or use amqps://"},
		{"file with amqp:// and ssl = false", "[DEFAULT]\ntransport_url = amqp://u:secret@h/\n[oslo_messaging_rabbit]\nssl = false\nssl_ca_file = /ca.pem\n" + vg,
			[]string{"f:5: [oslo_messaging_rabbit] ssl_ca_file: TLS is off"}, "set ssl = true or use amqps://"},
		{"file with the default URL", "[oslo_messaging_rabbit]\nssl_ca_file = /ca.pem\n" + vg,
			[]string{"f:2: [oslo_messaging_rabbit] ssl_ca_file: TLS is off"}, "set ssl = true or use amqps://"},
		{"ssl = false with amqps://", "[DEFAULT]\ntransport_url = amqps://u:secret@h/\n[oslo_messaging_rabbit]\nssl = false\n" + vg,
			[]string{"f:4: [oslo_messaging_rabbit] ssl: false contradicts transport_url amqps://"}, "remove ssl or use rabbit://"},
		{"ssl = true with rabbit://", "[DEFAULT]\ntransport_url = rabbit://u:secret@h/\n[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = /ca.pem\n" + vg, nil, ""},
		{"ssl = true with amqps://", "[DEFAULT]\ntransport_url = amqps://u:secret@h/\n[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = /ca.pem\n" + vg, nil, ""},
		{"files with amqps://", "[DEFAULT]\ntransport_url = amqps://u:secret@h/\n[oslo_messaging_rabbit]\nssl_ca_file = /ca.pem\n" + vg, nil, ""},
	} {
		c, err := Parse("f", strings.NewReader(tc.in))
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: got %v, want no error", tc.name, err)
			} else if strings.Contains(tc.in, "ssl = true") && !c.Rabbit.SSL {
				t.Errorf("%s: got Rabbit.SSL false, want true", tc.name)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: got no error, want %q", tc.name, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error quotes the transport_url password: %v", tc.name, err)
		}
		got := strings.Split(err.Error(), "\n")
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %d errors, want %d:\n%v", tc.name, len(got), len(tc.want), err)
			continue
		}
		for i, want := range tc.want {
			if !strings.HasPrefix(got[i], want) {
				t.Errorf("%s: got %q, want it to start with %q", tc.name, got[i], want)
			}
			if !strings.Contains(got[i], tc.fix) {
				t.Errorf("%s: got %q, want it to say %q", tc.name, got[i], tc.fix)
			}
		}
	}
}

func TestTransportURLErrorsHidePassword(t *testing.T) {
	for _, in := range []string{
		"[DEFAULT]\ntransport_url = http://aos:PW1/PW2@host:5672/vhost\n[lvm]\nvolume_groups = v\n",
		"[DEFAULT]\ntransport_url = rabbit:/aos:PW1/PW2@host:5672/vhost\n[lvm]\nvolume_groups = v\n",
	} {
		_, err := Parse("f", strings.NewReader(in))
		if err == nil {
			t.Errorf("%q: got no error, want one", in)
		} else if strings.Contains(err.Error(), "PW1") || strings.Contains(err.Error(), "PW2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestAllowedNames(t *testing.T) {
	c, err := Parse("t.conf", strings.NewReader("[lvm]\nvolume_groups = vol\nallowed_names = volume-*, _snapshot-*\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.LVM.AllowedNames, " "); got != "volume-* _snapshot-*" {
		t.Fatalf("allowed_names %q", got)
	}
	_, err = Parse("t.conf", strings.NewReader("[lvm]\nvolume_groups = vol\nallowed_names = volume-[\n"))
	if err == nil {
		t.Fatal("malformed pattern: err = nil, want non-nil")
	}
	if !strings.Contains(err.Error(), "t.conf:3: [lvm] allowed_names") {
		t.Fatalf("malformed pattern: err.Error() = %q, want it to contain \"t.conf:3: [lvm] allowed_names\"", err.Error())
	}
}
