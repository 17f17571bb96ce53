// NAT expiry: the hashed timer wheel.
//
// Expiry: a hashed timer wheel of one-second slots. A packet only stores its second in the
//  session (no list move); when a slot comes due each session is freed if truly idle, else
//  moved to the slot of its real deadline. expire(budget) bounds the work per call.
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

// ---- timer wheel ------------------------------------------------------------------------------

template <class F>
typename NatCore<F>::Link& NatCore<F>::link(uint32_t i) noexcept {
  return i < cap_ ? sessions_[i].wheel : wheel_heads_[i - cap_];
}

template <class F>
void NatCore<F>::wheel_unlink(uint32_t s) noexcept {
  Link& l = sessions_[s].wheel;
  link(l.prev).next = l.next;
  link(l.next).prev = l.prev;
}

template <class F>
void NatCore<F>::wheel_link(uint32_t s, uint32_t head) noexcept {
  Link& h = link(head);
  sessions_[s].wheel = Link{head, h.next};
  link(h.next).prev = s;
  h.next = s;
}

template <class F>
uint32_t NatCore<F>::deadline(uint32_t s) const noexcept {
  return sessions_[s].last_seen + timeout_[sessions_[s].timeout_class];
}

template <class F>
void NatCore<F>::wheel_schedule(uint32_t s) noexcept {
  const uint32_t d = std::max(deadline(s), wheel_now_);
  wheel_link(s, cap_ + (d & (kWheelSlots - 1)));
}

template <class F>
uint32_t NatCore<F>::expire(uint64_t now, uint32_t budget) noexcept {
  const uint32_t now_s = seconds(now);
  const uint32_t due = cap_ + kWheelSlots;
  uint32_t freed = 0;
  for (uint32_t work = 0; work < budget; ++work) {
    Link& d = wheel_heads_[kWheelSlots];
    if (d.next == due) {
      if (wheel_now_ > now_s) break;
      // Move the whole slot to the due list, so sessions re-filed into the same slot (a
      // deadline a wheel turn away) wait for the next turn.
      const uint32_t head = cap_ + (wheel_now_++ & (kWheelSlots - 1));
      Link& h = link(head);
      if (h.next != head) {
        d = h;
        link(d.next).prev = due;
        link(d.prev).next = due;
        h = Link{head, head};
      }
      continue;
    }
    const uint32_t s = d.next;
    if (deadline(s) <= now_s) {
      delete_session(s);
      counters_.sessions_expired.add();
      ++freed;
    } else {
      wheel_unlink(s);
      wheel_schedule(s);
    }
  }
  return freed;
}

#define EXITGW_NAT_INSTANTIATE(F)                                    \
  template NatCore<F>::Link& NatCore<F>::link(uint32_t) noexcept;    \
  template void NatCore<F>::wheel_unlink(uint32_t) noexcept;         \
  template void NatCore<F>::wheel_link(uint32_t, uint32_t) noexcept; \
  template uint32_t NatCore<F>::deadline(uint32_t) const noexcept;   \
  template void NatCore<F>::wheel_schedule(uint32_t) noexcept;       \
  template uint32_t NatCore<F>::expire(uint64_t, uint32_t) noexcept;
EXITGW_NAT_INSTANTIATE(Nat44)
EXITGW_NAT_INSTANTIATE(Nat66)
#undef EXITGW_NAT_INSTANTIATE

}  // namespace exitgw::dp::nat
