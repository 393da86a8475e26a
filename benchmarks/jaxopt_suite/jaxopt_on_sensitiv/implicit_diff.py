from sensitiv import custom_fixed_point, custom_root, root_jvp, root_vjp  # same names
