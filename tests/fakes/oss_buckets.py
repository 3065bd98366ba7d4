"""The fake OSS's bucket operations: listing (V1 and V2), batch delete, bucket info."""

from __future__ import annotations

from urllib.parse import quote
from xml.etree import ElementTree

from .oss_store import (
    Bucket,
    OSSError,
    add_text,
    decode_token,
    encode_token,
    iso8601,
    iter_listing,
    parse_xml,
    to_xml,
)


def bucket_op(
    method: str, bucket: Bucket, params: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    if method == "GET" and "bucketInfo" in params:
        return 200, {}, _bucket_info(bucket)
    if method == "GET" and "uploads" not in params:
        return 200, {}, _list(bucket, params)
    if method == "POST" and "delete" in params:
        return 200, {}, _batch_delete(bucket, params, body)
    raise OSSError(400, "NotImplemented", f"the fake does not implement {method} on a bucket")


def _list(bucket: Bucket, params: dict[str, str]) -> bytes:
    v2 = params.get("list-type") == "2"
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter", "")
    try:
        max_keys = int(params.get("max-keys", "100"))
    except ValueError:
        raise OSSError(400, "InvalidArgument", "max-keys must be an integer.") from None
    if not 1 <= max_keys <= 1000:
        raise OSSError(400, "InvalidArgument", "max-keys must be between 1 and 1000.")
    url = params.get("encoding-type") == "url"

    def enc(text: str) -> str:
        return quote(text, safe="") if url else text

    if v2:
        token = params.get("continuation-token", "")
        after = decode_token(token) if token else params.get("start-after", "")
    else:
        after = params.get("marker", "")
    items = list(iter_listing(sorted(bucket.objects), prefix, delimiter, after))
    page, truncated = items[:max_keys], len(items) > max_keys

    root = ElementTree.Element("ListBucketResult")
    add_text(root, "Name", bucket.name)
    add_text(root, "Prefix", enc(prefix))
    if v2:
        if "start-after" in params:
            add_text(root, "StartAfter", enc(params["start-after"]))
        if "continuation-token" in params:
            add_text(root, "ContinuationToken", params["continuation-token"])
    else:
        add_text(root, "Marker", enc(after))
    add_text(root, "MaxKeys", str(max_keys))
    add_text(root, "Delimiter", enc(delimiter))
    add_text(root, "IsTruncated", "true" if truncated else "false")
    if truncated:
        last = page[-1][1]
        if v2:
            add_text(root, "NextContinuationToken", enc(encode_token(last)))
        else:
            add_text(root, "NextMarker", enc(last))
    if v2:
        add_text(root, "KeyCount", str(len(page)))
    if url:
        add_text(root, "EncodingType", "url")
    for kind, name in page:
        if kind == "prefix":
            add_text(ElementTree.SubElement(root, "CommonPrefixes"), "Prefix", enc(name))
            continue
        obj = bucket.objects[name]
        node = ElementTree.SubElement(root, "Contents")
        add_text(node, "Key", enc(name))
        add_text(node, "LastModified", iso8601(obj.mtime))
        add_text(node, "ETag", f'"{obj.etag}"')
        add_text(node, "Type", obj.object_type)
        add_text(node, "Size", str(len(obj.data)))
        add_text(node, "StorageClass", "Standard")
        if not v2 or params.get("fetch-owner") == "true":
            owner = ElementTree.SubElement(node, "Owner")
            add_text(owner, "ID", "fake-owner")
            add_text(owner, "DisplayName", "fake-owner")
    return to_xml(root)


def _batch_delete(bucket: Bucket, params: dict[str, str], body: bytes) -> bytes:
    try:
        request = parse_xml(body)
    except ElementTree.ParseError:
        raise OSSError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    quiet = (request.findtext("Quiet") or "false").lower() == "true"
    keys = [node.findtext("Key") or "" for node in request.findall("Object")]
    if not keys or len(keys) > 1000:
        raise OSSError(400, "MalformedXML", "Delete between 1 and 1000 objects at a time.")
    url = params.get("encoding-type") == "url"
    root = ElementTree.Element("DeleteResult")
    if url:
        add_text(root, "EncodingType", "url")
    for key in keys:
        bucket.objects.pop(key, None)
        if not quiet:
            add_text(
                ElementTree.SubElement(root, "Deleted"),
                "Key",
                quote(key, safe="") if url else key,
            )
    return to_xml(root)


def _bucket_info(bucket: Bucket) -> bytes:
    root = ElementTree.Element("BucketInfo")
    node = ElementTree.SubElement(root, "Bucket")
    for tag, value in [
        ("Name", bucket.name),
        ("CreationDate", iso8601(bucket.created)),
        ("StorageClass", "Standard"),
        ("ExtranetEndpoint", "127.0.0.1"),
        ("IntranetEndpoint", "127.0.0.1"),
        ("Location", "oss-fake"),
    ]:
        add_text(node, tag, value)
    owner = ElementTree.SubElement(node, "Owner")
    add_text(owner, "DisplayName", "fake-owner")
    add_text(owner, "ID", "fake-owner")
    add_text(ElementTree.SubElement(node, "AccessControlList"), "Grant", "private")
    return to_xml(root)
