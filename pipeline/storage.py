"""Object-storage settings: the ``[storage]`` table of a workflow, training or sweep file, handed to fsspec as
the ``storage_options`` of every ``s3://`` (and ``gs://``) URL that refinery opens, merged with the
environment (``AWS_*`` variables, ``~/.aws`` profiles, ``FSSPEC_S3_*``)::

    [storage]
    endpoint_url = "http://127.0.0.1:8333"   # an S3-compatible server (MinIO, SeaweedFS, Ceph, R2)
    region = "us-east-1"
    profile = "research"                      # a profile of ~/.aws/credentials (resolved on this machine)
    anonymous = false                         # true: public buckets, no credentials (Common Crawl's)

The settings apply to this process (fsspec's configuration) and travel to the Ray workers in their runtime
environment, with the driver's credentials (its ``AWS_*`` variables, or the profile's keys resolved here),
so that workers on nodes started without credentials can read and write. They are never written to a run's
files: ``workflow.json`` records inputs and stages only, and no log line prints them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import fsspec

from tokenizer.errors import invalid

FORWARDED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
ENV_PREFIX = "FSSPEC_"


@dataclass(kw_only=True)
class StorageSettings:
    """The ``[storage]`` table."""

    endpoint_url: str = ""
    region: str = ""
    profile: str = ""
    anonymous: bool = False

    def __post_init__(self):
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise invalid("endpoint_url", f"expected a URL such as http://127.0.0.1:8333, got {self.endpoint_url!r}")
        if self.anonymous and self.profile:
            raise invalid("anonymous", "anonymous access takes no profile; remove one of them")
        if self.profile:
            _profile_credentials(self.profile)  # a missing profile fails here, before any work

    def options(self) -> dict[str, dict]:
        """fsspec options per protocol (s3fs's and gcsfs's names for the same settings)."""
        s3: dict = {}
        if self.endpoint_url:
            s3["endpoint_url"] = self.endpoint_url
        if self.region:
            s3["client_kwargs"] = {"region_name": self.region}
        if self.profile:
            s3["profile"] = self.profile
        if self.anonymous:
            s3["anon"] = True
        gcs = {"token": "anon"} if self.anonymous else {}
        return {name: opts for name, opts in (("s3", s3), ("gs", gcs), ("gcs", gcs)) if opts}


def apply(settings: StorageSettings | None) -> None:
    """Make ``settings`` the defaults of every filesystem this process opens from now on."""
    if settings is None:
        return
    for protocol, options in settings.options().items():
        fsspec.config.conf[protocol] = {**fsspec.config.conf.get(protocol, {}), **options}


def worker_env(settings: StorageSettings | None) -> dict[str, str]:
    """Environment variables that give a Ray worker this process's storage access: the settings (a profile
    resolved to its keys, since worker nodes may not have it) and the forwarded ``AWS_*`` variables."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    options = {p: dict(o) for p, o in settings.options().items()} if settings else {}
    if settings and settings.profile:
        options["s3"].pop("profile", None)
        env.update(_profile_credentials(settings.profile))
    for protocol, values in options.items():
        env[f"{ENV_PREFIX}{protocol.upper()}"] = json.dumps(values)
    return env


def apply_env() -> None:
    """In a worker: take the settings that :func:`worker_env` put in the environment."""
    if any(name.startswith(ENV_PREFIX) for name in os.environ):
        fsspec.config.set_conf_env(fsspec.config.conf)


def _profile_credentials(profile: str) -> dict[str, str]:
    import botocore.exceptions
    import botocore.session

    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except botocore.exceptions.ProfileNotFound:
        raise invalid("profile", f"no profile {profile!r} in ~/.aws/config or ~/.aws/credentials") from None
    if credentials is None:
        raise invalid("profile", f"profile {profile!r} has no credentials")
    frozen = credentials.get_frozen_credentials()
    env = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        env["AWS_SESSION_TOKEN"] = frozen.token
    return env
