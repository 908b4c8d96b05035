// Package config loads the agent's INI file (/etc/aos-agent/aos-agent.conf),
// in the style operators know from cinder.conf. Every key has a safe default
// where one exists; errors name the file, the line and the key.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/agent/rpc"
)

// DefaultPath is where packages and units expect the file.
const DefaultPath = "/etc/aos-agent/aos-agent.conf"

type Config struct {
	Host            string
	TransportURL    string
	ControlExchange string
	Topic           string
	StateDir        string
	// RuntimeDir (tmpfs) takes a fence's journal when StateDir cannot be
	// written, and holds the fence lock.
	RuntimeDir string
	LogLevel   string
	// InitiatorNameFile is open-iscsi's initiatorname.iscsi: the cluster
	// view compares the names across hosts (cloned images share one).
	InitiatorNameFile string
	// LVMLocalConf is lvmlocal.conf, whose local/host_id the cluster view
	// compares across hosts before a lockspace join makes a duplicate bite.
	LVMLocalConf string
	// LVMConf and MultipathConf are read for the settings the fence's
	// timing depends on (lvmlockctl_kill_command; no_path_retry and
	// polling_interval, with multipath's conf.d beside multipath.conf).
	LVMConf       string
	MultipathConf string

	Rabbit   Rabbit
	LVM      LVM
	Recovery Recovery
	Metrics  Metrics
}

// Rabbit mirrors the [oslo_messaging_rabbit] options that change the
// topology or transport; they must match the deployment's oslo settings.
type Rabbit struct {
	DurableQueues bool
	AutoDelete    bool
	QuorumQueues  bool
	HAQueues      bool
	// SSL is oslo's ssl: TLS to every broker of a rabbit:// or amqp:// URL
	// (amqps:// always uses TLS). The ssl_* files are refused without TLS.
	SSL         bool
	SSLCAFile   string
	SSLCertFile string
	SSLKeyFile  string
}

type LVM struct {
	VolumeGroups []string
	// AllowedNames are shell patterns (path.Match) an LV name in a request
	// must match; empty allows every valid name.
	AllowedNames   []string
	MultipathAlias string
	// MaxCopies bounds the wipes and clone copies running at once.
	MaxCopies        int
	CommandTimeout   time.Duration
	LockStartTimeout time.Duration
}

type Recovery struct {
	// Mode: "auto" recovers a fenced VG by itself once its paths are back,
	// "manual" fences and waits for `aos-agent recover`, "off" leaves
	// everything to sanlock (the kill hook does not fence).
	Mode string
	// LibvirtURI: the hypervisor whose domains recovery resumes once their
	// LVs are back (and keeps paused otherwise); "" leaves domains alone.
	LibvirtURI string
}

type Metrics struct {
	Listen string // "" disables the HTTP endpoint
}

// Default returns the configuration used for keys the file does not set.
func Default() *Config {
	host, _ := os.Hostname()
	return &Config{
		Host:              host,
		TransportURL:      "rabbit://guest:guest@127.0.0.1:5672/",
		ControlExchange:   "openstack",
		Topic:             "aos-agent",
		StateDir:          "/var/lib/aos-agent",
		RuntimeDir:        "/run/aos-agent",
		InitiatorNameFile: "/etc/iscsi/initiatorname.iscsi",
		LVMLocalConf:      "/etc/lvm/lvmlocal.conf",
		LVMConf:           "/etc/lvm/lvm.conf",
		MultipathConf:     "/etc/multipath.conf",
		LogLevel:          "info",
		LVM: LVM{
			MaxCopies:        2,
			CommandTimeout:   60 * time.Second,
			LockStartTimeout: 5 * time.Minute,
		},
		Recovery: Recovery{Mode: "auto", LibvirtURI: "qemu:///system"},
		Metrics:  Metrics{Listen: "127.0.0.1:9720"},
	}
}

// Error is a configuration error at a place in a file.
type Error struct {
	File    string
	Line    int // 0 when the problem is a missing key
	Section string
	Key     string
	Msg     string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("%s: [%s] %s: %s", where, e.Section, e.Key, e.Msg)
}

// Load reads path; a missing file is an error (the agent must not run on
// guessed volume groups).
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(path, f)
}

// keys lists every accepted key per section with its setter, so unknown keys
// (usually typos) are rejected instead of silently ignored.
var keys = map[string]map[string]func(c *Config, v string) error{
	"DEFAULT": {
		"host":                func(c *Config, v string) error { return setNonEmpty(&c.Host, v) },
		"transport_url":       setTransportURL,
		"control_exchange":    func(c *Config, v string) error { return setNonEmpty(&c.ControlExchange, v) },
		"topic":               func(c *Config, v string) error { return setNonEmpty(&c.Topic, v) },
		"state_dir":           func(c *Config, v string) error { return setAbsPath(&c.StateDir, v) },
		"runtime_dir":         func(c *Config, v string) error { return setAbsPath(&c.RuntimeDir, v) },
		"log_level":           func(c *Config, v string) error { return setEnum(&c.LogLevel, v, "debug", "info", "warn", "error") },
		"initiator_name_file": func(c *Config, v string) error { return setAbsPath(&c.InitiatorNameFile, v) },
		"lvmlocal_conf":       func(c *Config, v string) error { return setAbsPath(&c.LVMLocalConf, v) },
		"lvm_conf":            func(c *Config, v string) error { return setAbsPath(&c.LVMConf, v) },
		"multipath_conf":      func(c *Config, v string) error { return setAbsPath(&c.MultipathConf, v) },
	},
	"oslo_messaging_rabbit": {
		"amqp_durable_queues": func(c *Config, v string) error { return setBool(&c.Rabbit.DurableQueues, v) },
		"amqp_auto_delete":    func(c *Config, v string) error { return setBool(&c.Rabbit.AutoDelete, v) },
		"rabbit_quorum_queue": func(c *Config, v string) error { return setBool(&c.Rabbit.QuorumQueues, v) },
		"rabbit_ha_queues":    func(c *Config, v string) error { return setBool(&c.Rabbit.HAQueues, v) },
		"ssl":                 func(c *Config, v string) error { return setBool(&c.Rabbit.SSL, v) },
		"ssl_ca_file":         func(c *Config, v string) error { return setAbsPath(&c.Rabbit.SSLCAFile, v) },
		"ssl_cert_file":       func(c *Config, v string) error { return setAbsPath(&c.Rabbit.SSLCertFile, v) },
		"ssl_key_file":        func(c *Config, v string) error { return setAbsPath(&c.Rabbit.SSLKeyFile, v) },
	},
	"lvm": {
		"volume_groups": setVolumeGroups,
		"allowed_names": setAllowedNames,
		"max_copies": func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return fmt.Errorf("%q is not a number from 1 to 64", v)
			}
			c.LVM.MaxCopies = n
			return nil
		},
		"multipath_alias":    func(c *Config, v string) error { return setNonEmpty(&c.LVM.MultipathAlias, v) },
		"command_timeout":    func(c *Config, v string) error { return setDuration(&c.LVM.CommandTimeout, v) },
		"lock_start_timeout": func(c *Config, v string) error { return setDuration(&c.LVM.LockStartTimeout, v) },
	},
	"recovery": {
		"mode": func(c *Config, v string) error { return setEnum(&c.Recovery.Mode, v, "auto", "manual", "off") },
		"libvirt_uri": func(c *Config, v string) error {
			if v != "" && !strings.Contains(v, ":///") {
				return fmt.Errorf("want a libvirt URI like qemu:///system, or empty, got %q", v)
			}
			c.Recovery.LibvirtURI = v
			return nil
		},
	},
	"metrics": {
		"listen": setListen,
	},
}

// Parse reads INI text: [section] headers, "key = value" or "key: value",
// '#' and ';' comment lines. Later duplicates of a key win, as in oslo.config.
func Parse(name string, r io.Reader) (*Config, error) {
	c, err := parse(name, r)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadLenient reads path like Load but never gives up on a bad key: every
// key that parses is applied, the others keep their defaults, and the
// errors come back beside the config. Only the kill hook uses it: it must
// fence with what it can read, since failing leaves the host to the
// watchdog's reset. An unreadable file gives the defaults (no VGs).
func LoadLenient(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Default(), err
	}
	defer f.Close()
	return parse(path, f)
}

// parse returns the config with every valid key applied and the errors of
// the others.
func parse(name string, r io.Reader) (*Config, error) {
	c := Default()
	section := ""
	sc := bufio.NewScanner(r)
	var errs []error
	lines := map[string]int{} // "section.key" → line of the value in effect
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				errs = append(errs, &Error{File: name, Line: n, Section: section, Key: line, Msg: "malformed section header"})
				continue
			}
			section = strings.TrimSpace(line[1 : len(line)-1])
			if _, ok := keys[section]; !ok {
				errs = append(errs, &Error{File: name, Line: n, Section: section, Key: "", Msg: "unknown section"})
			}
			continue
		}
		k, v, ok := cutKV(line)
		if !ok {
			errs = append(errs, &Error{File: name, Line: n, Section: section, Key: line, Msg: `expected "key = value"`})
			continue
		}
		if section == "" {
			errs = append(errs, &Error{File: name, Line: n, Key: k, Msg: "key outside any section"})
			continue
		}
		sect, known := keys[section]
		if !known {
			continue // already reported at the header
		}
		set, ok := sect[k]
		if !ok {
			errs = append(errs, &Error{File: name, Line: n, Section: section, Key: k, Msg: "unknown key"})
			continue
		}
		if err := set(c, v); err != nil {
			errs = append(errs, &Error{File: name, Line: n, Section: section, Key: k, Msg: err.Error()})
			continue
		}
		lines[section+"."+k] = n
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	if len(c.LVM.VolumeGroups) == 0 {
		errs = append(errs, &Error{File: name, Section: "lvm", Key: "volume_groups", Msg: "required: the shared VGs this agent may touch"})
	}
	errs = append(errs, checkTLS(c, name, lines)...)
	return c, errors.Join(errs...)
}

func cutKV(line string) (string, string, bool) {
	i := strings.IndexAny(line, "=:")
	if i <= 0 {
		return "", "", false
	}
	return strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:]), true
}

func setNonEmpty(dst *string, v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	*dst = v
	return nil
}

func setAbsPath(dst *string, v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q is not an absolute path", v)
	}
	*dst = v
	return nil
}

func setEnum(dst *string, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func setBool(dst *bool, v string) error {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		*dst = true
	case "false", "no", "off", "0":
		*dst = false
	default:
		return fmt.Errorf("%q is not a boolean", v)
	}
	return nil
}

// setDuration accepts Go durations ("90s", "5m") and plain seconds ("90"),
// the latter being what oslo-style files use.
func setDuration(dst *time.Duration, v string) error {
	if secs, err := strconv.Atoi(v); err == nil {
		if secs <= 0 {
			return fmt.Errorf("%q must be positive", v)
		}
		*dst = time.Duration(secs) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration (e.g. 90 or 90s)", v)
	}
	*dst = d
	return nil
}

func setTransportURL(c *Config, v string) error {
	for _, scheme := range []string{"rabbit://", "amqp://", "amqps://"} {
		if strings.HasPrefix(v, scheme) {
			c.TransportURL = v
			return nil
		}
	}
	return errors.New("must start with rabbit://, amqp:// or amqps:// (all mean AMQP 0-9-1 here)")
}

// checkTLS refuses TLS settings that would not take effect: ssl_* files
// without TLS would be ignored and the broker password sent in clear while
// the operator believes TLS is on. Errors never quote transport_url.
func checkTLS(c *Config, file string, lines map[string]int) []error {
	const sect = "oslo_messaging_rabbit"
	amqps := strings.HasPrefix(c.TransportURL, "amqps://")
	sslLine, sslSet := lines[sect+".ssl"]
	if amqps && sslSet && !c.Rabbit.SSL {
		return []error{&Error{File: file, Line: sslLine, Section: sect, Key: "ssl",
			Msg: "false contradicts transport_url amqps://, which always uses TLS: remove ssl or use rabbit://"}}
	}
	if amqps || c.Rabbit.SSL {
		return nil
	}
	var errs []error
	for _, f := range []struct{ key, value string }{
		{"ssl_ca_file", c.Rabbit.SSLCAFile}, {"ssl_cert_file", c.Rabbit.SSLCertFile}, {"ssl_key_file", c.Rabbit.SSLKeyFile},
	} {
		if f.value != "" {
			errs = append(errs, &Error{File: file, Line: lines[sect+"."+f.key], Section: sect, Key: f.key,
				Msg: "TLS is off (ssl is not true and transport_url is not amqps://), so this file would be ignored and the password sent in clear: set ssl = true or use amqps://"})
		}
	}
	return errs
}

// setVolumeGroups only splits the list; names are validated against LVM's
// rules by the lvm package when the agent starts, so the rules live in one place.
func setVolumeGroups(c *Config, v string) error {
	var vgs []string
	seen := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if seen[f] {
			return fmt.Errorf("volume group %q listed twice", f)
		}
		seen[f] = true
		vgs = append(vgs, f)
	}
	if len(vgs) == 0 {
		return errors.New("must name at least one volume group")
	}
	c.LVM.VolumeGroups = vgs
	return nil
}

// setAllowedNames splits the pattern list and checks each pattern's syntax.
func setAllowedNames(c *Config, v string) error {
	var pats []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
		pats = append(pats, p)
	}
	c.LVM.AllowedNames = pats
	return nil
}

func setListen(c *Config, v string) error {
	if v == "" {
		c.Metrics.Listen = ""
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	c.Metrics.Listen = v
	return nil
}

// RPC is the broker connection this configuration describes, for the
// daemon and for the commands that call agents (cluster, status).
func (c *Config) RPC() rpc.Config {
	return rpc.Config{
		URL: c.TransportURL, Exchange: c.ControlExchange, Topic: c.Topic, Server: c.Host,
		Durable: c.Rabbit.DurableQueues, AutoDelete: c.Rabbit.AutoDelete,
		QuorumQueues: c.Rabbit.QuorumQueues, HAQueues: c.Rabbit.HAQueues,
		TLS: c.Rabbit.SSL, CAFile: c.Rabbit.SSLCAFile, CertFile: c.Rabbit.SSLCertFile, KeyFile: c.Rabbit.SSLKeyFile,
	}
}
