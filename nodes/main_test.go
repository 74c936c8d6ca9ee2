package nodes_test

import (
	"testing"

	"minivercel/schema/schematest"
)

func TestMain(m *testing.M) { schematest.Main(m) }
