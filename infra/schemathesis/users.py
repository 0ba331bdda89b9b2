"""The callers schemathesis runs as, made the way people are: a buyer and a seller sign up, read
their code in the local mailbox, confirm and log in; an admin is made with Cognito's admin API, as
an operator would. A fourth user's token is for POST /auth/logout, which revokes it.

So that examples reach real resources and not only 404s, the seller lists a product and the buyer
orders it a few times; their ids, and a spare user's for the admin operations on users, go into
schemathesis dictionaries (.devstack/schemathesis/*.dict, which schemathesis.toml binds to the
path parameters). The callers' own user ids are kept out of them: nobody deletes the caller.

Prints shell assignments: BUYER_TOKEN, SELLER_TOKEN, ADMIN_TOKEN, LOGOUT_TOKEN.
Reads the API's address from .devstack/ready and the user pool from .devstack/stack.json; the
Cognito endpoint from the environment that infra/scripts/common.sh loads."""
import json, os, re, sys, time, urllib.error, urllib.request, uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
API = (ROOT / ".devstack" / "ready").read_text().strip()
COGNITO = os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER") or os.environ["AWS_ENDPOINT_URL"]
POOL = json.loads((ROOT / ".devstack" / "stack.json").read_text())["resources"]["UserPool"]["physical_id"]
PASSWORD = "Schemathesis-1"


def call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(API + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def expect(status, want, what, body):
    if status != want:
        sys.exit(f"schemathesis users: {what} answered {status}: {body}")


def emailed_code(email):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(COGNITO.rstrip("/") + "/_ministack/ses/messages", timeout=10) as r:
            sent = json.load(r)["messages"]
        bodies = [m.get("BodyText", "") for account in sent.values() for m in account if email in m.get("To", [])]
        found = re.search(r"\d{6}", bodies[-1]) if bodies else None
        if found:
            return found.group(0)
        time.sleep(0.2)
    sys.exit(f"schemathesis users: no verification email to {email} within 10 s")


def login(email):
    status, body = call("POST", "/auth/login", {"email": email, "password": PASSWORD})
    expect(status, 200, f"login of {email}", body)
    return body["access_token"], body["user"]["user_id"]


def signed_up(role):
    email = f"schemathesis-{role}-{uuid.uuid4().hex[:10]}@example.com"
    status, body = call("POST", "/auth/signup", {"email": email, "password": PASSWORD, "role": role})
    expect(status, 201, f"sign-up of a {role}", body)
    status, body = call("POST", "/auth/confirm", {"email": email, "code": emailed_code(email)})
    expect(status, 200, f"confirmation of a {role}", body)
    return login(email)


def dictionary(name, values):
    """A schemathesis dictionary file (libFuzzer format: one quoted entry a line)."""
    out = ROOT / ".devstack" / "schemathesis" / f"{name}.dict"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f'"{v}"\n' for v in values))


def admin():
    email = f"schemathesis-admin-{uuid.uuid4().hex[:10]}@example.com"
    cognito = boto3.client("cognito-idp", endpoint_url=COGNITO, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    cognito.admin_create_user(UserPoolId=POOL, Username=email, MessageAction="SUPPRESS",
                              UserAttributes=[{"Name": "email", "Value": email}])
    cognito.admin_set_user_password(UserPoolId=POOL, Username=email, Password=PASSWORD, Permanent=True)
    cognito.admin_add_user_to_group(UserPoolId=POOL, Username=email, GroupName="admin")
    return login(email)


buyer, _ = signed_up("buyer")
seller, _ = signed_up("seller")
admin_token, _ = admin()
logout, _ = signed_up("buyer")
_, spare_user = signed_up("buyer")

product = {"name": "Schemathesis teapot", "category": "kitchen",
           "price": {"amount": 1200, "currency": "JPY"}, "stock_quantity": 100000}
status, body = call("POST", "/api/v1/products", product, seller)
expect(status, 201, "listing a product", body)
products = [body["id"]]
orders = []
for _ in range(5):
    status, body = call("POST", "/api/v1/orders", {"items": [{"product_id": products[0], "quantity": 1}]}, buyer)
    expect(status, 201, "an order", body)
    orders.append(body["id"])
dictionary("products", products)
dictionary("orders", orders)
dictionary("users", [spare_user])

print(f"BUYER_TOKEN={buyer}")
print(f"SELLER_TOKEN={seller}")
print(f"ADMIN_TOKEN={admin_token}")
print(f"LOGOUT_TOKEN={logout}")
