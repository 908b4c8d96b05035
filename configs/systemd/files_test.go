package unitfiles

import (
	"slices"
	"testing"
)

func TestUnits(t *testing.T) {
	want := []string{
		"aos-agent-lockstart.service", "aos-agent.service",
		"cinder-volume.service.d/aos-agent.conf", "nova-compute.service.d/aos-agent.conf",
	}
	if got := Units(); !slices.Equal(got, want) {
		t.Errorf("got %v", got)
	}
	for _, u := range Enable {
		if _, err := Read(u); err != nil {
			t.Error(err)
		}
	}
}
