// Reads the simulator's command line.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  integer v;
  initial if ($value$plusargs("seed=%d", v)) $display("seed %0d", v);
  assign y = a ^ b;
endmodule
