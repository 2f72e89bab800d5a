"""directupload: the domain package shared by every function.

Pure logic lives here (profiles, keys, policies, processing steps); AWS access goes
through the small adapters in ``store``, ``storage`` and ``events``, each built from a
client passed in (see ``aws.clients``).
"""
