"""Uploads a file to a Glassguard server with tuspy, the official Python tus
client, for the interoperability test in `tests/tests/tus_client.rs`.

    upload.py ENDPOINT TOKEN FILE SHA256 KIND TARGET URL_STORE CHUNK [STOP_AFTER]

The upload's URL is kept in URL_STORE (tuspy's file storage), so a second
run resumes the same upload. With STOP_AFTER, the script sends that many
chunks and then dies without a goodbye (exit code 3), as an app killed in
the middle of an upload would. It prints `resumed_from=<offset>` (where this
run started) and `offset=<offset>` (where it ended).
"""

import os
import sys

from tusclient import client
from tusclient.storage import filestorage


def main() -> None:
    endpoint, token, path, sha256, kind, target, store, chunk = sys.argv[1:9]
    stop_after = int(sys.argv[9]) if len(sys.argv) > 9 else None
    tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
    uploader = tus.uploader(
        file_path=path,
        chunk_size=int(chunk),
        metadata={"sha256": sha256, "kind": kind, "target": target},
        store_url=True,
        url_storage=filestorage.FileStorage(store),
    )
    print(f"resumed_from={uploader.offset}", flush=True)
    if stop_after is not None:
        for _ in range(stop_after):
            uploader.upload_chunk()
        print(f"offset={uploader.offset}", flush=True)
        os._exit(3)
    uploader.upload()
    print(f"offset={uploader.offset}", flush=True)


if __name__ == "__main__":
    main()
