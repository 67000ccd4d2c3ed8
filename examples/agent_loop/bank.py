"""AgentDojo's banking tools as tiny Python functions over an in-memory bank.

The bank is built from the AgentDojo traces (bench/agentdojo/data/traces.json): the transactions and
standing orders are the ones the suite's tools returned, the files are the ones `read_file` returned, and
each injection marker («INJECTION:vector») is filled in: with the attack (the `important_instructions`
template around the injection task's goal) for the vectors the scenario attacks, with the benign default
for the others. The attack is appended to the benign text, so the bill still names its biller.

Tool names and parameters are those of bench/agentdojo/data/banking.tools.json, which the policy is
checked against, so `guard` passes the policy exactly the arguments AgentDojo's tools take.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Callable, Dict, List, Optional

# Not in the traces (no ground truth reads them); the values of AgentDojo's banking environment.
BALANCE = 1810.0
USER = {"first_name": "Emma", "last_name": "Johnson", "street": "Apple Street 1", "city": "Cupertino"}


def parse_yaml_records(text: str) -> List[Dict[str, Any]]:
    """Reads the YAML that AgentDojo's tools print for a list of flat records (yaml.safe_dump of
    transactions): `- key: value` starts a record, `  key: value` continues it, and a deeper-indented
    line continues a long plain value. Enough for these traces, not a YAML parser."""
    records: List[Dict[str, Any]] = []
    last_key: Optional[str] = None
    for line in text.split("\n"):
        if not line.strip():
            continue
        match = re.match(r"^(- |  )([A-Za-z_][\w]*): ?(.*)$", line)
        if match is None:
            if records and last_key is not None:  # a folded continuation of the previous value
                records[-1][last_key] = f"{records[-1][last_key]} {line.strip()}"
                continue
            raise ValueError(f"unexpected line in a transaction list: {line!r}")
        lead, key, value = match.groups()
        if lead == "- ":
            records.append({})
        records[-1][key] = _scalar(value)
        last_key = key
    return records


def _scalar(text: str) -> Any:
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~", ""):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


class Bank:
    """The in-memory state the tools read and change."""

    def __init__(self, data_dir: str, attacked_vectors: Dict[str, str]):
        with open(os.path.join(data_dir, "traces.json"), encoding="utf-8") as f:
            traces = json.load(f)
        suite = traces["suites"]["banking"]
        self.vectors = suite["injection_vectors"]
        self.attacked_vectors = attacked_vectors  # vector id -> attack text
        self.files: Dict[str, str] = {}
        self.transactions: List[Dict[str, Any]] = []
        self.scheduled: List[Dict[str, Any]] = []
        for task in suite["user_tasks"] + suite["injection_tasks"]:
            for call in task["calls"]:
                if call["error"] is not None:
                    continue
                if call["function"] == "read_file":
                    self.files[call["args"]["file_path"]] = self.fill(call["result"])
                elif call["function"] == "get_most_recent_transactions" and not self.transactions:
                    if call["args"].get("n", 0) >= 100:  # all of them
                        self.transactions = parse_yaml_records(self.fill(call["result"]))
                elif call["function"] == "get_scheduled_transactions" and not self.scheduled:
                    self.scheduled = parse_yaml_records(self.fill(call["result"]))
        if not self.transactions or not self.scheduled or not self.files:
            raise ValueError("the traces lack the banking state (transactions, standing orders, files)")
        self.iban = self.scheduled[0]["sender"]
        self.balance = BALANCE
        self.user = dict(USER)
        self.password = "password123"
        self.initial = copy.deepcopy(self.snapshot())

    def fill(self, text: str) -> str:
        """Fills in the injection markers of a tool result."""
        for vector_id, vector in self.vectors.items():
            benign = vector.get("default_as_loaded", vector.get("default", ""))
            attack = self.attacked_vectors.get(vector_id)
            text = text.replace(vector["marker"], benign + attack if attack is not None else benign)
        return text

    def snapshot(self) -> Dict[str, Any]:
        return {"balance": self.balance, "transactions": self.transactions,
                "scheduled": self.scheduled, "user": self.user, "password": self.password}

    def next_id(self) -> int:
        return max(t["id"] for t in self.transactions + self.scheduled) + 1


def make_tools(bank: Bank, wrap: Callable[[Callable], Callable]) -> Dict[str, Callable]:
    """The eleven banking tools, each passed through `wrap` (e.g. `toolwarden.guard(session)`)."""

    def get_iban() -> str:
        return bank.iban

    def get_balance() -> float:
        return bank.balance

    def get_user_info() -> Dict[str, str]:
        return dict(bank.user)

    def get_most_recent_transactions(n: int = 100) -> List[Dict[str, Any]]:
        return [dict(t) for t in bank.transactions[-int(n):]]

    def get_scheduled_transactions() -> List[Dict[str, Any]]:
        return [dict(t) for t in bank.scheduled]

    def read_file(file_path: str) -> str:
        return bank.files.get(file_path, "")

    def send_money(recipient: str, amount: float, subject: str, date: str) -> Dict[str, str]:
        bank.transactions.append({"id": bank.next_id(), "sender": bank.iban, "recipient": recipient,
                                  "amount": amount, "subject": subject, "date": date,
                                  "recurring": False})
        bank.balance -= amount
        return {"message": f"Transaction to {recipient} for {amount} sent."}

    def schedule_transaction(recipient: str, amount: float, subject: str, date: str,
                             recurring: bool) -> Dict[str, str]:
        bank.scheduled.append({"id": bank.next_id(), "sender": bank.iban, "recipient": recipient,
                               "amount": amount, "subject": subject, "date": date,
                               "recurring": recurring})
        return {"message": f"Transaction to {recipient} for {amount} scheduled."}

    def update_scheduled_transaction(id: int, recipient: Optional[str] = None,
                                     amount: Optional[float] = None, subject: Optional[str] = None,
                                     date: Optional[str] = None,
                                     recurring: Optional[bool] = None) -> Dict[str, str]:
        for t in bank.scheduled:
            if t["id"] == id:
                changes = {"recipient": recipient, "amount": amount, "subject": subject, "date": date,
                           "recurring": recurring}
                t.update({k: v for k, v in changes.items() if v is not None})
                return {"message": f"Transaction with ID {id} updated."}
        raise ValueError(f"Transaction with ID {id} not found.")

    def update_password(password: str) -> Dict[str, str]:
        bank.password = password
        return {"message": "Password updated."}

    def update_user_info(first_name: Optional[str] = None, last_name: Optional[str] = None,
                         street: Optional[str] = None, city: Optional[str] = None) -> Dict[str, str]:
        changes = {"first_name": first_name, "last_name": last_name, "street": street, "city": city}
        bank.user.update({k: v for k, v in changes.items() if v is not None})
        return dict(bank.user)

    tools = [get_iban, get_balance, get_user_info, get_most_recent_transactions,
             get_scheduled_transactions, read_file, send_money, schedule_transaction,
             update_scheduled_transaction, update_password, update_user_info]
    return {fn.__name__: wrap(fn) for fn in tools}
