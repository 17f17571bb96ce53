#!/usr/bin/python3
"""Independent WireGuard handshake (Noise_IKpsk2) in Python, for known-answer tests.

Written from the protocol description (https://www.wireguard.com/protocol/, whitepaper
section 5.4) using only hashlib.blake2s, hmac and python3-cryptography (X25519,
ChaCha20Poly1305), with no code shared with the C++ implementation. From fixed keys,
indices and timestamp it produces the initiation and response bytes (mac1 filled, mac2
zero), the transport keys, a cookie reply and the re-sent initiation carrying mac2, plus
HMAC/KDF/MAC cross-check values. Output: wg_handshake_vectors.h next to this script, and
the messages as seeds in tests/fuzz/corpus/wg_handshake_fuzz/.

Run: /usr/bin/python3 tests/unit/vectors/gen_wg_handshake.py
"""
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"


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


def AEAD(key, counter, plain, aad):
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), plain, aad)


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


def fixed(label, n=32):
    """Deterministic 'random' bytes so the vectors are reproducible."""
    return hashlib.sha256(b"exitgw wg kat " + label).digest()[:n]


def tai64n(secs, nanos):
    return struct.pack(">QI", (1 << 62) + 10 + secs, nanos)


def initiation(s_i_priv, s_r_pub, e_i_priv, sender, ts, cookie=None):
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


def c_array(name, data):
    body = ", ".join("0x%02x" % b for b in data)
    lines, line = [], "   "
    for item in body.split(" "):
        if len(line) + len(item) + 1 > 98:
            lines.append(line)
            line = "   "
        line += " " + item
    lines.append(line)
    return "inline constexpr uint8_t %s[%d] = {\n%s\n};\n" % (name, len(data), "\n".join(lines))


def main():
    s_i_priv, s_r_priv = fixed(b"initiator static"), fixed(b"responder static")
    e_i_priv, e_r_priv = fixed(b"initiator ephemeral"), fixed(b"responder ephemeral")
    psk = fixed(b"preshared key")
    sender_i, sender_r = 0x11223344, 0xA1B2C3D4
    secs, nanos = 1700000000, 0x12000000  # nanoseconds already whitened to 2^24 ns
    ts = tai64n(secs, nanos)

    s_i_pub, s_r_pub = PUB(s_i_priv), PUB(s_r_priv)
    init_msg, c, h = initiation(s_i_priv, s_r_pub, e_i_priv, sender_i, ts)
    resp_msg, c = response(c, h, s_i_pub, PUB(e_i_priv), e_r_priv, psk, sender_r, sender_i)
    t1, t2 = KDF(2, c, b"")

    # Cookie reply from the responder to the initiation, and the initiation re-sent with mac2.
    cookie = fixed(b"cookie", 16)
    cookie_nonce = fixed(b"cookie nonce", 24)
    init_mac1 = init_msg[116:132]
    enc_cookie = XAEAD(HASH(LABEL_COOKIE, s_r_pub), cookie_nonce, cookie, init_mac1)
    cookie_reply = struct.pack("<II", 3, sender_i) + cookie_nonce + enc_cookie
    assert len(cookie_reply) == 64
    init_mac2_msg, _, _ = initiation(s_i_priv, s_r_pub, e_i_priv, sender_i, ts, cookie)

    # Primitive cross-checks: HMAC with short and long (> 64-byte block) keys, KDF1..3, MAC.
    prim_key = bytes(range(32))
    prim_input = b"exitgw kdf input"
    long_key = bytes(range(100))
    kdf3 = KDF(3, prim_key, prim_input)

    out = ["// Generated by tests/unit/vectors/gen_wg_handshake.py (independent Python WireGuard",
           "// handshake). Do not edit; rerun the script with /usr/bin/python3 to regenerate.",
           "#pragma once", "", "#include <cstdint>", "",
           "namespace exitgw::wg::vectors {", "",
           "inline constexpr uint32_t kInitiatorIndex = 0x%08x;" % sender_i,
           "inline constexpr uint32_t kResponderIndex = 0x%08x;" % sender_r,
           "inline constexpr int64_t kTimestampSeconds = %d;" % secs,
           "inline constexpr uint32_t kTimestampNanos = 0x%08x;" % nanos, ""]
    for name, data in [
        ("kInitiatorStaticPrivate", s_i_priv), ("kInitiatorStaticPublic", s_i_pub),
        ("kResponderStaticPrivate", s_r_priv), ("kResponderStaticPublic", s_r_pub),
        ("kInitiatorEphemeralPrivate", e_i_priv), ("kResponderEphemeralPrivate", e_r_priv),
        ("kPresharedKey", psk), ("kTimestamp", ts),
        ("kInitiation", init_msg), ("kResponse", resp_msg),
        ("kInitiatorSendKey", t1), ("kInitiatorRecvKey", t2),
        ("kCookie", cookie), ("kCookieReply", cookie_reply), ("kInitiationWithMac2", init_mac2_msg),
        ("kPrimKey", prim_key), ("kPrimInput", prim_input), ("kPrimLongKey", long_key),
        ("kHmacShortKey", HMAC(prim_key, prim_input)), ("kHmacLongKey", HMAC(long_key, prim_input)),
        ("kKdf1", KDF(1, prim_key, prim_input)[0]),
        ("kKdf3T1", kdf3[0]), ("kKdf3T2", kdf3[1]), ("kKdf3T3", kdf3[2]),
        ("kKdf2EmptyT1", KDF(2, prim_key, b"")[0]), ("kKdf2EmptyT2", KDF(2, prim_key, b"")[1]),
        ("kMac16", MAC(prim_key, prim_input)),
    ]:
        out.append(c_array(name, data))
    out.append("}  // namespace exitgw::wg::vectors")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wg_handshake_vectors.h")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("wrote", path)
    # Valid messages seed the handshake fuzzer, so mutations start deep inside the parsers.
    corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus",
                          "wg_handshake_fuzz")
    os.makedirs(corpus, exist_ok=True)
    for name, data in [("initiation", init_msg), ("response", resp_msg),
                       ("cookie_reply", cookie_reply), ("initiation_mac2", init_mac2_msg)]:
        with open(os.path.join(corpus, name + ".bin"), "wb") as f:
            f.write(data)
    print("wrote", os.path.normpath(corpus))


if __name__ == "__main__":
    main()
