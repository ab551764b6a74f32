"""Embedded XAPI: XML-RPC pools over a shared SAN of LUN image files.

Modules:

``san``        :class:`san.San` -- LUN image files addressed by
               (portal, target IQN, LUN); ``create_lun``, ``clone_lun``,
               ``path``, ``scsi_id``, ``set_chap``.
``api``        :class:`api.Pool` -- one pool's database, settings and XAPI
               dispatch (``pool.dispatch(method, params) -> envelope``).
``db``         records, refs, computed set-of-ref fields, field types
               (``coerce``), the ``get_all_records_where`` query language,
               wire marshalling.
``errors``     XAPI failure codes with their parameter lists.
``sm``         the SM backends ``iscsi``, ``lvmoiscsi``, ``relvmoiscsi`` and
               ``ext``: plug, scan, probe, create.
``storage``    SR/PBD/VDI semantics over the backends.
``vm``         VBD/VM/VIF/network semantics.
``migration``  host.migrate_receive, VM.assert_can_migrate,
               VM.migrate_send (XAPI's storage-motion rule, hazards).
``lease``      the dom0 lease plugin run per host (own /run, virtual
               monotonic clock, LUNs by SCSI id), host.get_servertime with
               ``clock_offset``, lease hazards.
``server``     threaded XML-RPC servers; ``serve(san_dir, pools)``.
``fixture``    :class:`fixture.SimulatorFixture` for tests.
"""
