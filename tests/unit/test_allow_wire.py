"""An Allow's CheckResponse written as wire bytes (authz.envoy.ok_wire) parses to the message
the protobuf library builds for it, for any headers, removals and user; and the encoder finds
a repeated answer again without building it twice."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from google.rpc import code_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from authz.decision import Allow, json_deny
from authz.envoy import ResponseEncoder, ok_wire
from authz.identity import Identity

AUTH_METHODS = {"bearer": "bearer", "session": "session", "skip_auth": "skip"}


def ok_response(allow: Allow) -> pb.CheckResponse:
    """The answer built with the protobuf library, from the Allow's fields and the metadata
    keys authz/envoy.py documents."""
    response = pb.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))
    ok = response.ok_response
    ok.SetInParent()
    for key, value in allow.headers:
        ok.headers.add(
            header=base_pb2.HeaderValue(key=key, value=value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
    ok.headers_to_remove.extend(allow.remove)
    metadata = {"decision": "allow", "reason": allow.reason, "auth_method": AUTH_METHODS.get(allow.reason, "none")}
    if allow.identity is not None and allow.identity.user:
        metadata["user"] = allow.identity.user
    response.dynamic_metadata.update(metadata)
    return response


# Names and values of every length class a varint length has (1, 2 and 3 bytes), and non-ASCII.
text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.@é€😀", min_size=100, max_size=300),
    st.builds(lambda n: "v" * n, st.sampled_from([127, 128, 16383, 16384, 70000])),
)
identities = st.builds(
    Identity, user=text, groups=st.tuples(text), issuer=st.just("https://idp.example.com"), expires_at=st.just(2e9)
)
allows = st.builds(
    Allow,
    reason=st.one_of(st.sampled_from(["bearer", "session", "skip_auth"]), text),
    headers=st.lists(st.tuples(text, text), max_size=4).map(tuple),
    remove=st.lists(text, max_size=6).map(tuple),
    identity=st.one_of(st.none(), identities),
)


@settings(max_examples=400, deadline=None)
@given(allows)
def test_wire_bytes_parse_to_the_message_the_library_builds(allow: Allow) -> None:
    assert pb.CheckResponse.FromString(ok_wire(allow)) == ok_response(allow)


@settings(max_examples=50, deadline=None)
@given(allows)
def test_the_encoder_sends_the_same_answer_the_library_would(allow: Allow) -> None:
    encoder = ResponseEncoder()
    assert encoder.encode(allow) == ok_response(allow)
    assert encoder.wire(allow) is encoder.wire(allow)


def test_a_deny_with_set_cookie_is_never_kept() -> None:
    encoder = ResponseEncoder()
    plain = json_deny(401, "token_expired")
    with_cookie = json_deny(302, "login_required", (("set-cookie", "authservice_state=abc; Secure"),))
    assert encoder.wire(plain) is encoder.wire(plain)
    first, second = encoder.wire(with_cookie), encoder.wire(with_cookie)
    assert first == second and first is not second  # built for each request
    assert pb.CheckResponse.FromString(first).denied_response.status.code == 302
