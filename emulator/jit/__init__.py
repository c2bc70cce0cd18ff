"""Microsoft Defender for Cloud JIT semantics: validation, NSG/firewall rules, requests and expiry."""
