module exitgw/tests/discogen

go 1.26.6

require (
	go4.org/mem v0.0.0-20240501181205-ae6ca9944745
	golang.org/x/crypto v0.54.0
	tailscale.com v1.102.5
)

require (
	github.com/go-json-experiment/json v0.0.0-20260214004413-d219187c3433 // indirect
	golang.org/x/exp v0.0.0-20260410095643-746e56fc9e2f // indirect
	golang.org/x/sys v0.47.0 // indirect
)
