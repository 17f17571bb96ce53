// Package bridge keeps exitgw in step with the tailnet: each netmap the control client reports
// becomes the gateway's peer set, packet filter and approval (sent only when they change),
// and the connector's health goes to PUT /v1/tailnet.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"
	"unicode/utf8"

	"tailscale.com/types/key"
	"tailscale.com/types/logger"
	"tailscale.com/types/netmap"

	"exitgw/connector/internal/adminapi"
	"exitgw/connector/internal/login"
	"exitgw/connector/internal/netmapconv"
)

// Source is where control client statuses come from (login.Client).
type Source interface {
	Changed() <-chan struct{}
	Snapshot() login.Snapshot
}

// Config says where the updates go.
type Config struct {
	Admin       *adminapi.Client
	LoginServer string
	NodeKey     key.NodePublic // the gateway's WireGuard public key, which must stay the node key
	// ResyncInterval is how often the gateway's status is read to notice it lost the updates
	// (a restart): it then gets them all again.
	ResyncInterval time.Duration
	// OnNetMap, if set, gets each new netmap (after the node key check), e.g. the DoH service's
	// policy. It must not block.
	OnNetMap func(*netmap.NetworkMap)
	Logf     logger.Logf
}

// ErrNodeKeyRotated means the server gave this node another node key than exitgw's WireGuard
// key: going on would advertise a key the gateway cannot answer for.
var ErrNodeKeyRotated = errors.New("the coordination server rotated the node key")

const (
	requestTimeout = 10 * time.Second
	retryMin       = time.Second
	retryMax       = 30 * time.Second
)

// applied is what the gateway was last given successfully (nil: unknown, send it).
type applied struct {
	peers    *adminapi.PeerSet
	filter   *adminapi.Filter
	approved *bool
	tailnet  *adminapi.Tailnet
}

type bridge struct {
	cfg Config

	lastNetMap   *netmap.NetworkMap
	result       netmapconv.Result
	haveNetmap   bool
	lastNetmapAt time.Time
	problems     []string
	counts       string // the last summary logged

	health  adminapi.Tailnet  // what the gateway should show
	refused map[string]string // the gateway's refusal of each kind of update, until one applies

	sent        applied
	retry       time.Duration // next retry delay after a transport error; 0 when all went through
	undelivered string        // the last delivery error logged, so a run of them is logged once
}

// Run applies netmaps until ctx ends (nil) or the node key is rotated (ErrNodeKeyRotated).
// The gateway keeps its last state when Run returns: nothing is cleared on the way out.
func Run(ctx context.Context, cfg Config, src Source) error {
	if cfg.Logf == nil {
		cfg.Logf = logger.Discard
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 10 * time.Second
	}
	b := &bridge{cfg: cfg, refused: map[string]string{}}
	b.health.NodeKey = cfg.NodeKey.String()
	b.health.LoginServer = cfg.LoginServer

	resync := time.NewTicker(cfg.ResyncInterval)
	defer resync.Stop()
	retryTimer := time.NewTimer(time.Hour)
	retryTimer.Stop()
	expiryTimer := time.NewTimer(time.Hour)
	expiryTimer.Stop()
	defer retryTimer.Stop()
	defer expiryTimer.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-src.Changed():
			if err := b.take(src.Snapshot()); err != nil {
				b.apply(ctx) // one attempt to show the gateway why
				return err
			}
		case <-expiryTimer.C:
			b.convert(time.Now())
		case <-retryTimer.C:
		case <-resync.C:
			b.checkGateway(ctx)
		}
		if !b.apply(ctx) && ctx.Err() == nil {
			b.retry = min(max(2*b.retry, retryMin), retryMax)
			retryTimer.Reset(b.retry)
		} else {
			b.retry = 0
		}
		if exp := b.result.NextExpiry; !exp.IsZero() {
			expiryTimer.Reset(max(time.Until(exp), 0) + time.Second)
		}
	}
}

// take folds one control client snapshot into the desired state.
func (b *bridge) take(s login.Snapshot) error {
	now := time.Now()
	if s.NetMap != nil && s.NetMap != b.lastNetMap {
		if got := s.NetMap.NodeKey; !got.IsZero() && got != b.cfg.NodeKey {
			return b.rotated(got, now)
		}
		if s.Persist.Valid() && s.Persist.PrivateNodeKey().Public() != b.cfg.NodeKey {
			return b.rotated(s.Persist.PrivateNodeKey().Public(), now)
		}
		b.lastNetMap = s.NetMap
		b.haveNetmap = true
		b.lastNetmapAt = now
		b.convert(now)
		if b.cfg.OnNetMap != nil {
			b.cfg.OnNetMap(s.NetMap)
		}
	}
	switch {
	case s.URL != "":
		b.setHealth(adminapi.StateLoggedOut, "the coordination server wants an interactive login; the auth key was refused or has expired (give a valid --auth-key-file)", now)
	case b.haveNetmap && b.lastNetMap.SelfNode.Valid() && !b.lastNetMap.SelfNode.MachineAuthorized():
		b.setHealth(adminapi.StateLoggedOut, "this machine waits for an admin to authorize it in the coordination server", now)
	case b.haveNetmap && selfExpired(b.lastNetMap, now):
		b.setHealth(adminapi.StateLoggedOut, "this node's key expired in the coordination server: disable key expiry for the gateway's node (or use a tagged auth key), then restart the connector", now)
	case s.Err != nil && b.haveNetmap:
		b.setHealth(adminapi.StateStale, s.Err.Error(), now)
	case s.Err != nil:
		b.setHealth(adminapi.StateError, s.Err.Error(), now)
	case b.haveNetmap && s.InMapPoll:
		b.setHealth(adminapi.StateOK, "", now)
	case b.haveNetmap:
		b.setHealth(adminapi.StateStale, "not connected to the coordination server's map poll", now)
	}
	return nil
}

// selfAddresses lists the node's tailnet addresses (host prefixes, as bare IPs).
func selfAddresses(nm *netmap.NetworkMap) []string {
	if !nm.SelfNode.Valid() {
		return nil
	}
	var out []string
	for _, p := range nm.SelfNode.Addresses().All() {
		if p.IsSingleIP() {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

func selfExpired(nm *netmap.NetworkMap, now time.Time) bool {
	exp := nm.SelfKeyExpiry()
	return nm.SelfNode.Valid() && (nm.SelfNode.Expired() || (!exp.IsZero() && !exp.After(now)))
}

func (b *bridge) rotated(got key.NodePublic, now time.Time) error {
	err := fmt.Errorf("%w: it now knows this node as %s, but exitgw's WireGuard key is %s; refusing to go on (the gateway keeps its last state). Disable key expiry for this node in the coordination server, or give exitgw the new key",
		ErrNodeKeyRotated, got.ShortString(), b.cfg.NodeKey.ShortString())
	b.cfg.Logf("bridge: ERROR: %v", err)
	b.setHealth(adminapi.StateError, err.Error(), now)
	return err
}

func (b *bridge) convert(now time.Time) {
	if !b.haveNetmap {
		return
	}
	b.result = netmapconv.Convert(b.lastNetMap, now)
	if !slices.Equal(b.result.Problems, b.problems) {
		for _, p := range b.result.Problems {
			b.cfg.Logf("netmap: left out: %s", p)
		}
		b.problems = b.result.Problems
	}
	r := b.result
	c := r.Counts
	summary := fmt.Sprintf("%d peers (left out: %d expired, %d unauthorized, %d with a problem), "+
		"%d filter rules (dropped: %d CapGrant-only, %d left empty; left out: %d cap: sources), approved=%v",
		len(r.Peers.Peers), c.PeersExpired, c.PeersUnauthorized, len(r.Problems),
		len(r.Filter.Rules), c.RulesCapGrantOnly, c.RulesEmpty, c.CapSourcesOmitted, r.Approved)
	if summary != b.counts {
		b.cfg.Logf("netmap: %s", summary)
		b.counts = summary
	}
}

func (b *bridge) setHealth(state, message string, now time.Time) {
	if b.health.State != state {
		b.health.SinceUnixMs = now.UnixMilli()
		b.cfg.Logf("bridge: tailnet %s %s", state, message)
	}
	b.health.State = state
	b.health.Message = truncate(message, maxMessageBytes)
}

// maxMessageBytes is the longest health message exitgw takes (control/admin/tailnet_api.cc).
const maxMessageBytes = 1024

// truncate cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// desiredHealth is the health to report: the gateway refusing an update overrides "ok".
func (b *bridge) desiredHealth() adminapi.Tailnet {
	h := b.health
	if b.haveNetmap {
		h.LastNetmapUnixMs = b.lastNetmapAt.UnixMilli()
		h.Addresses = selfAddresses(b.lastNetMap)
	}
	if h.State == adminapi.StateOK {
		for _, what := range []string{"peers", "filter", "approval"} {
			if msg, ok := b.refused[what]; ok {
				h.State = adminapi.StateError
				h.Message = msg
				break
			}
		}
	}
	return h
}

// apply sends what differs from what the gateway has. It reports false if a request could
// not be delivered (to be retried); a refusal is logged and not retried until it changes.
func (b *bridge) apply(ctx context.Context) bool {
	var steps []func() bool
	if b.haveNetmap {
		r := b.result
		approval := func() bool {
			return sendUpdate(ctx, b, &b.sent.approved, r.Approved, "approval", func(c context.Context) error {
				return b.cfg.Admin.PostApproval(c, r.Approved)
			})
		}
		// A withdrawal goes first and a grant last, and a step that cannot be delivered stops
		// the ones after it: the gateway never forwards under a peer set or filter it lacks.
		if !r.Approved {
			steps = append(steps, approval)
		}
		steps = append(steps, func() bool {
			return sendUpdate(ctx, b, &b.sent.peers, r.Peers, "peers", func(c context.Context) error {
				return b.cfg.Admin.PutPeers(c, r.Peers)
			})
		}, func() bool {
			return sendUpdate(ctx, b, &b.sent.filter, r.Filter, "filter", func(c context.Context) error {
				return b.cfg.Admin.PutFilter(c, r.Filter)
			})
		})
		if r.Approved {
			steps = append(steps, approval)
		}
	}
	if b.health.State != "" {
		steps = append(steps, func() bool {
			h := b.desiredHealth() // after the updates: it names a refusal of one
			return sendUpdate(ctx, b, &b.sent.tailnet, h, "tailnet health", func(c context.Context) error {
				return b.cfg.Admin.PutTailnet(c, h)
			})
		})
	}
	for _, step := range steps {
		if !step() {
			return false
		}
	}
	return true
}

// sendUpdate delivers want unless the gateway already has it (*last). A refusal counts as sent, so
// the same content is not pushed again.
func sendUpdate[T any](ctx context.Context, b *bridge, last **T, want T, what string, do func(context.Context) error) bool {
	if *last != nil && reflect.DeepEqual(**last, want) {
		return true
	}
	c, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := do(c)
	switch {
	case err == nil:
		delete(b.refused, what)
		if b.undelivered != "" {
			b.cfg.Logf("bridge: the gateway's admin API answers again")
			b.undelivered = ""
		}
	case adminapi.Refused(err):
		b.cfg.Logf("bridge: ERROR: the gateway refused the %s: %v", what, err)
		b.refused[what] = fmt.Sprintf("the gateway refused the %s: %v", what, err)
	default:
		if ctx.Err() == nil && b.undelivered == "" {
			b.cfg.Logf("bridge: %s not delivered (retrying with backoff): %v", what, err)
		}
		b.undelivered = err.Error()
		return false
	}
	v := want
	*last = &v
	return true
}

// checkGateway notices a gateway that lost the updates (restarted): its status no longer
// shows the health last sent. Everything is then sent again. And a gateway whose tailnet peer
// source differs from the set last sent (someone else PUT it) gets the peers again.
func (b *bridge) checkGateway(ctx context.Context) {
	if b.sent.tailnet == nil {
		return
	}
	c, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := b.cfg.Admin.GetStatus(c)
	if err == nil && st.Tailnet != nil && st.Tailnet.SinceUnixMs == b.sent.tailnet.SinceUnixMs &&
		st.Tailnet.LastNetmapUnixMs == b.sent.tailnet.LastNetmapUnixMs && st.Tailnet.State == b.sent.tailnet.State {
		b.checkPeers(ctx)
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			b.cfg.Logf("bridge: reading the gateway's status: %v", err)
		}
	} else {
		b.cfg.Logf("bridge: the gateway does not show the last tailnet state (restarted?): sending everything again")
	}
	b.sent = applied{}
}

// checkPeers compares the gateway's tailnet peer source with the set last sent and drops the
// record of it when they differ, so the next apply sends it again. A refused set is not
// compared: the gateway keeps its previous one until the netmap changes.
func (b *bridge) checkPeers(ctx context.Context) {
	if b.sent.peers == nil {
		return
	}
	if _, refused := b.refused["peers"]; refused {
		return
	}
	c, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	got, err := b.cfg.Admin.GetPeers(c)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			b.cfg.Logf("bridge: reading the gateway's tailnet peers: %v", err)
		}
	case !adminapi.SamePeers(got, *b.sent.peers):
		b.cfg.Logf("bridge: the gateway holds %d tailnet peers, not the %d last sent: sending them again",
			len(got.Peers), len(b.sent.peers.Peers))
		b.sent.peers = nil
	}
}
