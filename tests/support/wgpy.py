"""WireGuard (Noise_IKpsk2) in Python, independent of the C++ implementation.

Written from the protocol description (https://www.wireguard.com/protocol/, whitepaper
section 5.4) using only hashlib.blake2s, hmac and python3-cryptography (X25519,
ChaCha20Poly1305). One implementation for two users:
  - tests/unit/vectors/gen_wg_handshake.py: known-answer vectors from fixed keys;
  - tests/live/: an interactive initiator that handshakes with the real gateway and then
    seals and opens transport data messages (type 4).
"""
import hashlib
import hmac
import os
import struct
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"

MSG_INITIATION, MSG_RESPONSE, MSG_COOKIE_REPLY, MSG_TRANSPORT = 1, 2, 3, 4
TRANSPORT_HEADER = 16  # type, receiver index, counter
TAG = 16


class WgError(Exception):
    pass


# --- primitives ------------------------------------------------------------------------

def HASH(*parts):
    return hashlib.blake2s(b"".join(parts)).digest()


def MAC(key, data):
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def HMAC(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()


def KDF(n, key, data):
    t0 = HMAC(key, data)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i]))
        out.append(prev)
    return out


def PUB(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def DH(priv, pub):
    return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))


def _nonce(counter):
    return b"\0" * 4 + struct.pack("<Q", counter)


def AEAD(key, counter, plain, aad):
    return ChaCha20Poly1305(key).encrypt(_nonce(counter), plain, aad)


def AEAD_OPEN(key, counter, sealed, aad):
    """The plaintext, or WgError when the tag does not verify."""
    try:
        return ChaCha20Poly1305(key).decrypt(_nonce(counter), sealed, aad)
    except InvalidTag:
        raise WgError("AEAD tag does not verify")


def rotl32(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2), for XChaCha20-Poly1305."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl32(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl32(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl32(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl32(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<4I", *s[0:4]) + struct.pack("<4I", *s[12:16])


def XAEAD(key, nonce24, plain, aad):
    subkey = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(subkey).encrypt(b"\0" * 4 + nonce24[16:], plain, aad)


def tai64n(secs, nanos):
    return struct.pack(">QI", (1 << 62) + 10 + secs, nanos)


def tai64n_now():
    t = time.time_ns()
    return tai64n(t // 1_000_000_000, t % 1_000_000_000)


# --- handshake -------------------------------------------------------------------------

def initiation(s_i_priv, s_r_pub, e_i_priv, sender, ts, cookie=None):
    """The 148-byte initiation (mac1 filled, mac2 from cookie or zero) and the chaining key
    and hash the initiator keeps for the response."""
    s_i_pub = PUB(s_i_priv)
    c = HASH(CONSTRUCTION)
    h = HASH(HASH(c, IDENTIFIER), s_r_pub)
    e_i_pub = PUB(e_i_priv)
    h = HASH(h, e_i_pub)
    (c,) = KDF(1, c, e_i_pub)
    c, k = KDF(2, c, DH(e_i_priv, s_r_pub))
    enc_static = AEAD(k, 0, s_i_pub, h)
    h = HASH(h, enc_static)
    c, k = KDF(2, c, DH(s_i_priv, s_r_pub))
    enc_ts = AEAD(k, 0, ts, h)
    h = HASH(h, enc_ts)
    msg = struct.pack("<I", 1) + struct.pack("<I", sender) + e_i_pub + enc_static + enc_ts
    mac1 = MAC(HASH(LABEL_MAC1, s_r_pub), msg)
    msg += mac1
    mac2 = MAC(cookie, msg) if cookie else b"\0" * 16
    msg += mac2
    assert len(msg) == 148
    return msg, c, h


def response(c, h, s_i_pub, e_i_pub, e_r_priv, psk, sender, receiver):
    """The responder's 92-byte response and its final chaining key."""
    e_r_pub = PUB(e_r_priv)
    h = HASH(h, e_r_pub)
    (c,) = KDF(1, c, e_r_pub)
    (c,) = KDF(1, c, DH(e_r_priv, e_i_pub))
    (c,) = KDF(1, c, DH(e_r_priv, s_i_pub))
    c, tau, k = KDF(3, c, psk)
    h = HASH(h, tau)
    enc_nothing = AEAD(k, 0, b"", h)
    h = HASH(h, enc_nothing)
    msg = struct.pack("<III", 2, sender, receiver) + e_r_pub + enc_nothing
    msg += MAC(HASH(LABEL_MAC1, s_i_pub), msg)
    msg += b"\0" * 16
    assert len(msg) == 92
    return msg, c


def consume_response(msg, c, h, s_i_priv, e_i_priv, psk, sender):
    """The initiator's side of the response: (responder index, send key, receive key).

    Raises WgError on anything a real initiator would reject."""
    if len(msg) != 92:
        raise WgError("response is %d bytes, not 92" % len(msg))
    mtype, r_sender, r_receiver = struct.unpack("<III", msg[:12])
    if mtype != MSG_RESPONSE:
        raise WgError("message type %d is not a response" % mtype)
    if r_receiver != sender:
        raise WgError("response for index %#x, ours is %#x" % (r_receiver, sender))
    if MAC(HASH(LABEL_MAC1, PUB(s_i_priv)), msg[:60]) != msg[60:76]:
        raise WgError("response mac1 does not verify")
    e_r_pub, enc_nothing = msg[12:44], msg[44:60]
    h = HASH(h, e_r_pub)
    (c,) = KDF(1, c, e_r_pub)
    (c,) = KDF(1, c, DH(e_i_priv, e_r_pub))
    (c,) = KDF(1, c, DH(s_i_priv, e_r_pub))
    c, tau, k = KDF(3, c, psk)
    h = HASH(h, tau)
    if AEAD_OPEN(k, 0, enc_nothing, h) != b"":
        raise WgError("response carries a non-empty payload")
    send, recv = KDF(2, c, b"")
    return r_sender, send, recv


# --- an interactive initiator ------------------------------------------------------------

def padded(plain):
    """Transport payload padding: zeros to a multiple of 16 (a keepalive stays empty)."""
    return plain + b"\0" * (-len(plain) % 16)


class Initiator:
    """One peer's side of a session with a responder: handshake, then transport data.

    Not thread-safe; counters start at 0 as the protocol requires."""

    def __init__(self, static_priv, responder_pub, psk=b"\0" * 32, sender=None):
        self.static_priv = static_priv
        self.static_pub = PUB(static_priv)
        self.responder_pub = responder_pub
        self.psk = psk
        self.sender = sender if sender is not None else struct.unpack("<I", os.urandom(4))[0]
        self.receiver = None
        self.send_key = self.recv_key = None
        self.send_counter = 0
        self._pending = None

    def initiation(self, ts=None, ephemeral=None):
        e = ephemeral or os.urandom(32)
        msg, c, h = initiation(self.static_priv, self.responder_pub, e, self.sender,
                               ts or tai64n_now())
        self._pending = (c, h, e)
        return msg

    def consume_response(self, msg):
        if self._pending is None:
            raise WgError("no initiation outstanding")
        c, h, e = self._pending
        self.receiver, self.send_key, self.recv_key = consume_response(
            msg, c, h, self.static_priv, e, self.psk, self.sender)
        self._pending = None
        self.send_counter = 0

    def seal(self, plain):
        """A transport data message (type 4) carrying plain, padded to 16 bytes."""
        if self.send_key is None:
            raise WgError("no session yet")
        n = self.send_counter
        self.send_counter += 1
        return struct.pack("<IIQ", MSG_TRANSPORT, self.receiver, n) + AEAD(
            self.send_key, n, padded(plain), b"")

    def keepalive(self):
        return self.seal(b"")

    def open(self, msg):
        """(counter, padded plaintext) of a transport message addressed to us."""
        if len(msg) < TRANSPORT_HEADER + TAG:
            raise WgError("transport message of %d bytes" % len(msg))
        mtype, receiver, counter = struct.unpack("<IIQ", msg[:16])
        if mtype != MSG_TRANSPORT:
            raise WgError("message type %d is not transport data" % mtype)
        if receiver != self.sender:
            raise WgError("transport for index %#x, ours is %#x" % (receiver, self.sender))
        return counter, AEAD_OPEN(self.recv_key, counter, msg[16:], b"")


def unpad_ipv4(plain):
    """The inner IPv4 packet of a padded transport payload (by its total length)."""
    if len(plain) < 20 or plain[0] >> 4 != 4:
        raise WgError("inner packet is not IPv4")
    total = struct.unpack("!H", plain[2:4])[0]
    if total > len(plain):
        raise WgError("inner total length %d beyond the payload (%d)" % (total, len(plain)))
    return plain[:total]
