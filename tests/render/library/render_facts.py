"""Give a render host the facts of the platform it stands for.

The render containers all run Debian; the roles pick their platform values
from ansible_facts (os_family, distribution, distribution_major_version,
...). The play runs without fact gathering and sets those facts with this
module instead.
"""

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: render_facts
short_description: Set the facts of the platform a render container stands for
description:
  - Returns the given facts as ansible_facts; nothing on the host changes.
options:
  facts:
    description: The facts, e.g. os_family, distribution, distribution_major_version, fqdn.
    type: dict
    required: true
"""


def main():
    module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts=module.params["facts"])


if __name__ == "__main__":
    main()
