"""Application keys for the long-lived clients created by cleanup contexts."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.store.s3 import S3Client

S3_CLIENT = web.AppKey("s3_client", S3Client)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
