from skynet_tasks.cli import main

main()
