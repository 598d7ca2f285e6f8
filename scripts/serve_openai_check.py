"""OpenAI's Python client against `bertc serve`'s /v1/embeddings.

Usage: serve_openai_check.py BASE_URL TEXT...   (BASE_URL e.g. http://127.0.0.1:PORT/v1)

Asks the embeddings of the texts as any OpenAI user would (the client's
default encoding, base64, and floats) and prints them as one JSON list, in
input order; tests/serve.rs compares them with `bertc run`'s. Loopback
only: the server is the test's own.
"""

import json
import sys

from openai import OpenAI


def main() -> int:
    base_url, texts = sys.argv[1], sys.argv[2:]
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    default = client.embeddings.create(model="bertc", input=texts)
    floats = client.embeddings.create(model="bertc", input=texts, encoding_format="float")
    a = [d.embedding for d in sorted(default.data, key=lambda d: d.index)]
    b = [d.embedding for d in sorted(floats.data, key=lambda d: d.index)]
    if len(a) != len(texts) or a != b:
        print("base64 and float answers differ", file=sys.stderr)
        return 1
    json.dump(a, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
