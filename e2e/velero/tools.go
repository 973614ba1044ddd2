//go:build tools

// Keeps the Velero command in the module graph, so `go mod tidy` keeps every
// module it needs and go.sum pins them.
package tools

import _ "github.com/vmware-tanzu/velero/cmd/velero"
