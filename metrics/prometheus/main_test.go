package prometheus_test

import (
	"testing"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
