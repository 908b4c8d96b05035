package agent

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the daemon's logger: JSON lines on stderr, each prefixed
// with a kernel-style priority (<3> error, <4> warning, <6> info, <7> debug)
// when running under journald, so `journalctl -p err` finds the agent's
// errors. Repeated messages are sampled; dropped ones are counted in
// aos_log_messages_dropped_total instead of vanishing silently.
func NewLogger(level string, w io.Writer, reg prometheus.Registerer) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, lvl, fmt.Errorf("log level: %w", err)
	}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aos_log_messages_dropped_total",
		Help: "Log entries dropped by sampling of repeated messages.",
	})
	if reg != nil {
		if err := reg.Register(dropped); err != nil {
			return nil, lvl, err
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder = zapcore.NewJSONEncoder(encCfg)
	if os.Getenv("JOURNAL_STREAM") != "" {
		enc = &priorityEncoder{Encoder: enc}
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), lvl)
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100,
		zapcore.SamplerHook(func(_ zapcore.Entry, d zapcore.SamplingDecision) {
			if d&zapcore.LogDropped != 0 {
				dropped.Inc()
			}
		}))
	return zap.New(core, zap.AddCaller()), lvl, nil
}

// priorityEncoder prepends the syslog priority that systemd parses from
// stdout/stderr lines (SyslogLevelPrefix=yes, the default).
type priorityEncoder struct{ zapcore.Encoder }

func (p *priorityEncoder) Clone() zapcore.Encoder { return &priorityEncoder{p.Encoder.Clone()} }

func (p *priorityEncoder) EncodeEntry(e zapcore.Entry, f []zapcore.Field) (*buffer.Buffer, error) {
	line, err := p.Encoder.EncodeEntry(e, f)
	if err != nil {
		return nil, err
	}
	out := prefixPool.Get()
	out.AppendString(syslogPrefix(e.Level))
	out.Write(line.Bytes())
	line.Free()
	return out, nil
}

func syslogPrefix(l zapcore.Level) string {
	switch {
	case l >= zapcore.ErrorLevel:
		return "<3>"
	case l == zapcore.WarnLevel:
		return "<4>"
	case l == zapcore.DebugLevel:
		return "<7>"
	}
	return "<6>"
}

var prefixPool = buffer.NewPool()
