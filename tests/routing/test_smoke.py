def test_task_is_reserved_for_the_available_worker_and_completes(center):
    queue = center.queue()
    center.workflow(default=queue)
    alice = center.worker("alice")
    task = center.task({"type": "support"})
    reservation = center.pending_reservation(task)
    assert reservation.worker_sid == alice
    assert center.get_task(task).assignment_status == "reserved"
    center.accept(reservation.sid)
    assert center.get_task(task).assignment_status == "assigned"
    center.complete(task)
    assert center.get_task(task).assignment_status == "completed"
    assert center.channel(alice, "default").reserved_tasks == 0
