"""Local JWT issuer and verifier: what Cognito or another OIDC provider plus API Gateway's JWT
authorizer do on AWS, on this machine. The signing key lives in the state dir; tokens are
RS256 with iss, aud, sub, iat, nbf and exp, and are checked the way the authorizer checks them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "urn:directupload:local-issuer"
AUDIENCE = "directupload-local"
KEY_FILE = "jwt-signing-key.pem"
TOKEN_LIFETIME = 3600


class LocalIssuer:
    def __init__(self, state_dir: Path) -> None:
        path = state_dir / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} holds no RSA private key: remove it and a new one is made")
        self._key = key
        self._public = key.public_key()

    def mint(self, user: str, lifetime: int = TOKEN_LIFETIME, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "token_use": "access",
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": "local"})

    def verify(self, headers: dict[str, str]) -> dict[str, Any]:
        """The claims of the request's bearer token, or PermissionError (the authorizer's 401)."""
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise PermissionError("a bearer token is required (Authorization: Bearer <token>)")
        try:
            claims = jwt.decode(
                token.strip(),
                self._public,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise PermissionError(f"the token is not valid: {exc}") from None
        return dict(claims)


def main() -> None:
    import argparse

    from local import ROOT

    parser = argparse.ArgumentParser(description="Print a bearer token for the local stack.")
    parser.add_argument("user", nargs="?", default="alice")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument("--lifetime", type=int, default=TOKEN_LIFETIME)
    args = parser.parse_args()
    print(LocalIssuer(args.state_dir).mint(args.user, args.lifetime))


if __name__ == "__main__":
    main()
