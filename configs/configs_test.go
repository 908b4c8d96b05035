package configs

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
		t.Errorf("units: got %v, want %v", got, want)
	}
	for _, u := range EnableUnits {
		if _, err := ReadUnit(u); err != nil {
			t.Errorf("enabled unit %s: %v", u, err)
		}
	}
}
