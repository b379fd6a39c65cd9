// Hangs whatever the testbench does: an endless zero-delay loop in an initial block.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  integer n = 0;
  initial while (1) n = n + 1;
  assign y = a ^ b;
endmodule
