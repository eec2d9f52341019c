"""A small DER editor for CMP PKIMessages in tests: read and replace header fields and the body, then
re-protect (PasswordBasedMac with a credential secret, or ECDSA-SHA256 with a certificate's key)."""
import hashlib
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import der_tlv


def enc(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(nb)]) + nb + content


def seq(*parts):
    return enc(0x30, b"".join(parts))


def integer(v):
    if v == 0:
        return enc(0x02, b"\x00")
    b = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
    return enc(0x02, b)


def octets(b):
    return enc(0x04, b)


def oid(dotted):
    parts = [int(x) for x in dotted.split(".")]
    out = bytes([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return enc(0x06, out)


def elems(buf):
    """[(tag, whole, content)] of the concatenated elements in buf."""
    out, pos = [], 0
    while pos < len(buf):
        tag, s, e = der_tlv(buf, pos)
        out.append((tag, buf[pos:e], buf[s:e]))
        pos = e
    return out


def content(whole):
    _, s, e = der_tlv(whole, 0)
    return whole[s:e]


class Msg:
    """A PKIMessage split into header fields, body, protection and extraCerts."""

    def __init__(self, der):
        top = elems(content(der))
        hdr = [(t, w) for t, w, _ in elems(top[0][2])]
        self.lead = hdr[:3]          # pvno, sender, recipient
        self.opt = dict(hdr[3:])     # [0]..[8] by tag
        self.body = top[1][1]
        self.protection = None
        self.extra = None
        for t, w, c in top[2:]:
            if t == 0xA0:
                self.protection = w
            elif t == 0xA1:
                self.extra = w

    @property
    def body_type(self):
        return self.body[0] & 0x1F

    def field(self, tag):
        return self.opt.get(tag)

    def set_field(self, tag, whole):
        """Replaces, adds or (whole None) removes the header field [tag & 0x1f]."""
        if whole is None:
            self.opt.pop(tag, None)
        else:
            self.opt[tag] = whole

    @property
    def header(self):
        return self.lead + sorted(self.opt.items())

    def header_der(self):
        return seq(*[w for _, w in self.header])

    def protected_part(self):
        return seq(self.header_der(), self.body)

    def der(self):
        parts = [self.header_der(), self.body]
        if self.protection is not None:
            parts.append(self.protection)
        if self.extra is not None:
            parts.append(self.extra)
        return seq(*parts)

    def tid(self):
        return content(content(self.field(0xA4)))

    def sender_nonce(self):
        return content(content(self.field(0xA5)))

    # -- protection ------------------------------------------------------
    def mac(self, secret):
        alg = content(self.field(0xA1))
        self.protection = enc(0xA0, enc(0x03, b"\x00" + pbm_mac(secret, alg, self.protected_part())))
        return self

    def sign(self, key):
        self.set_field(0xA1, enc(0xA1, seq(oid("1.2.840.10045.4.3.2"))))
        sig = key.sign(self.protected_part(), ec.ECDSA(hashes.SHA256()))
        self.protection = enc(0xA0, enc(0x03, b"\x00" + sig))
        return self

    def fresh(self, tid=True):
        """A fresh transactionID and senderNonce (and no recipNonce)."""
        if tid:
            self.set_field(0xA4, enc(0xA4, octets(os.urandom(16))))
        self.set_field(0xA5, enc(0xA5, octets(os.urandom(16))))
        self.set_field(0xA6, None)
        return self


def pbm_mac(secret, alg_der, protected_part):
    """RFC 4211 4.4 PasswordBasedMac with the PBMParameter of the AlgorithmIdentifier alg_der."""
    import hmac
    alg = elems(content(alg_der))
    params = elems(alg[1][2])
    salt, owf, count, macalg = params
    owf_oid = content(elems(owf[2])[0][1]).hex()
    mac_oid = content(elems(macalg[2])[0][1]).hex()
    owf_name = {"608648016503040201": "sha256", "2b0e03021a": "sha1"}[owf_oid]
    mac_name = {"2a864886f70d0209": "sha256", "2b06010505080102": "sha1", "2a864886f70d0207": "sha1"}[mac_oid]
    key = secret.encode() + salt[2]
    for _ in range(int.from_bytes(count[2], "big")):
        key = hashlib.new(owf_name, key).digest()
    return hmac.new(key, protected_part, mac_name).digest()


# -- bodies -------------------------------------------------------------------


def cert_from_rep(der):
    """(status, DER of the first certificate) of an ip/cp/kup."""
    m = Msg(der)
    rep = elems(content(content(m.body)))  # [caPubs], response
    resp = rep[-1][2]
    cr = elems(elems(resp)[0][2])  # certReqId, status, certifiedKeyPair?
    status = int.from_bytes(elems(cr[1][2])[0][2], "big")
    if len(cr) < 3:
        return status, None
    ckp = elems(cr[2][2])
    cert = content(ckp[0][1])  # [0] certificate (explicit)
    return status, cert


def cert_conf_body(cert_der, status=None, cert_req_id=0, hash_bytes=None, extra_status=()):
    h = hash_bytes if hash_bytes is not None else hashlib.sha256(cert_der).digest()
    entries = []
    for st, crid, hb in [(status, cert_req_id, h)] + list(extra_status):
        parts = [octets(hb), integer(crid)]
        if st is not None:
            parts.append(seq(integer(st)))
        entries.append(seq(*parts))
    return enc(0xB8, seq(*entries))


def answer_to(req, rsp_der, body, new_nonce=True):
    """A follow-up message in the transaction of `req` (a Msg) answering rsp_der: same header, fresh
    senderNonce, recipNonce = the answer's senderNonce, the given body. Not protected yet."""
    rsp = Msg(rsp_der)
    m = Msg(req.der())
    m.set_field(0xA8, None)  # generalInfo (implicitConfirm) not needed
    if new_nonce:
        m.set_field(0xA5, enc(0xA5, octets(os.urandom(16))))
    m.set_field(0xA6, enc(0xA6, content(rsp.field(0xA5))))
    m.body = body
    m.protection = None
    return m


def status_bits(si_content):
    parts = elems(si_content)
    status = int.from_bytes(parts[0][2], "big")
    bits = set()
    for t, w, c in parts[1:]:
        if t == 0x03:
            for i, byte in enumerate(c[1:]):
                for b in range(8):
                    if byte & (0x80 >> b):
                        bits.add(i * 8 + b)
    return status, bits


def error_info(der):
    """(status, bits) of an error message; None when it is not one."""
    m = Msg(der)
    if m.body_type != 23:
        return None
    emc = elems(content(content(m.body)))
    return status_bits(emc[0][2])


def rep_info(der):
    """(status, bits) of the first response of an ip/cp/kup/rp."""
    m = Msg(der)
    inner = elems(content(content(m.body)))
    if m.body_type == 12:  # rp: status SEQUENCE OF PKIStatusInfo
        return status_bits(elems(inner[0][2])[0][2])
    resp = inner[-1][2]
    cr = elems(elems(resp)[0][2])
    return status_bits(cr[1][2])


def load_key(path):
    return serialization.load_pem_private_key(open(path, "rb").read(), None)
